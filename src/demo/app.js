// ccfraud demo: calls the prediction API (ccfraud serve's /invocations, or a
// deployed API Gateway URL in front of the lab's Lambda), shows the normal and
// fraud probabilities, and raises an alert at or above the threshold.
//
// The form follows the model: the serving container's GET /schema (beside
// /invocations, config.schemaUrl) lists its columns. A model of another
// schema gets one input per numeric column and a <select> per categorical
// one, and is sent one JSON object keyed by column name. The lab's model
// ("form":"lab"), and an API whose schema cannot be read (an API Gateway
// stage), get the lab's paste-a-list mode and its labelled examples. Column
// names and categories come from training data: they reach the page only as
// text (textContent, option values, attributes), never as HTML.
//
// Every prediction asks for its reasons (?explain=5 on the API URL: a query
// needs no CORS preflight, and the lab's Lambda, which forwards only the
// body, asks explain=3 itself). When the answer carries them (sibling keys of
// "classifications" in "result"), the page shows the model's decision
// (approve / review, with the expected loss when the amount is known) and the
// reasons as a horizontal bar chart drawn as SVG here: red bars to the right
// of the axis push towards fraud, green bars to the left push away, each
// labelled with the feature's name and value, with the output space the
// contributions add up in. An answer without them (an older server) shows
// the scores alone, as before.
"use strict";
(async function () {
  const $ = (id) => document.getElementById(id);
  const config = await (await fetch("/config.json")).json();
  const { examples } = await (await fetch("/examples.json")).json();
  $("api-url").textContent = config.apiUrl;
  // The training report, linked when the server has one (GET /report).
  if (config.reportUrl) {
    fetch(config.reportUrl)
      .then((resp) => {
        if (resp.ok) {
          $("report-link").href = config.reportUrl;
          $("report").hidden = false;
        }
      })
      .catch(() => {});
  }

  const pct = (p) => `${(100 * p).toFixed(2)}%`;
  const REASONS = 5;
  const SVG_NS = "http://www.w3.org/2000/svg";
  function showError(msg) {
    $("error").textContent = msg;
    $("error").hidden = false;
  }
  function note(msg) {
    $("mode-note").textContent = msg;
    $("mode-note").hidden = false;
  }

  // ---- which form: the model's schema, or the lab's list --------------------------------

  // The schema's columns when it is a usable one: [{name, categories|null}].
  function columnsOf(schema) {
    if (!schema || typeof schema !== "object" || !Array.isArray(schema.columns) || schema.columns.length === 0) {
      throw new Error("it has no list of columns");
    }
    return schema.columns.map((c, i) => {
      if (!c || typeof c.name !== "string" || c.name === "") throw new Error(`column ${i + 1} has no name`);
      if (c.kind === "numeric") return { name: c.name, categories: null };
      if (c.kind === "categorical" && Array.isArray(c.categories) && c.categories.every((v) => typeof v === "string")) {
        return { name: c.name, categories: c.categories };
      }
      throw new Error(`column ${c.name} has an unknown kind`);
    });
  }

  // {columns} for a model of another schema, or null for the lab's list.
  async function loadSchema() {
    if (!config.schemaUrl) {
      note(`The API ${config.apiUrl} is not a ccfraud serve /invocations URL, so the model's columns cannot be read from it: paste the lab's list of values.`);
      return null;
    }
    let schema;
    try {
      const resp = await fetch(config.schemaUrl);
      if (!resp.ok) throw new Error(`it answered ${resp.status}`);
      schema = await resp.json();
    } catch (e) {
      note(`Could not read the model's columns from ${config.schemaUrl} (${e.message || e}): paste the lab's list of values.`);
      return null;
    }
    if (schema && schema.form === "lab") return null;
    try {
      return { columns: columnsOf(schema), url: config.schemaUrl };
    } catch (e) {
      note(`The schema at ${config.schemaUrl} is not usable (${e.message}): paste the lab's list of values.`);
      return null;
    }
  }

  // ---- the lab's list ---------------------------------------------------------------

  function labMode() {
    for (const ex of examples) {
      const opt = document.createElement("option");
      opt.value = ex.id;
      opt.textContent = `${ex.label === "fraud" ? "FRAUD" : "normal"} — ${ex.title}`;
      opt.dataset.label = ex.label;
      $("example").appendChild(opt);
    }
    $("example").addEventListener("change", () => {
      const ex = examples.find((e) => e.id === $("example").value);
      if (ex) $("features").value = JSON.stringify(ex.features);
    });
    return {
      // The request body, or throws the message to show.
      body() {
        let features;
        try {
          features = JSON.parse($("features").value);
        } catch (e) {
          throw new Error("The transaction must be a JSON list of 29 numbers.");
        }
        if (!Array.isArray(features) || features.length !== 29 || !features.every(Number.isFinite)) {
          throw new Error("The transaction must be a JSON list of 29 finite numbers (V1…V28, standardized Amount).");
        }
        return JSON.stringify(features);
      },
      reference: () => $("example").value || null,
    };
  }

  // ---- a form from the schema ------------------------------------------------------

  function schemaMode({ columns, url }) {
    $("lab-input").hidden = true;
    $("schema-input").hidden = false;
    $("schema-url").textContent = url;
    $("intro").textContent = "Fraud check: fill in a transaction's columns, then predict.";
    const readers = columns.map((col, j) => {
      const field = document.createElement("div");
      field.className = "field";
      const label = document.createElement("label");
      label.htmlFor = `col-${j}`;
      label.textContent = col.name;
      const kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = col.categories ? " (category)" : " (number)";
      label.appendChild(kind);
      field.appendChild(label);
      $("columns").appendChild(field);
      if (!col.categories) {
        const input = document.createElement("input");
        input.type = "text";
        input.inputMode = "decimal";
        input.id = `col-${j}`;
        input.name = col.name;
        input.autocomplete = "off";
        field.appendChild(input);
        return () => {
          const text = input.value.trim();
          if (text === "") return null;
          const v = Number(text);
          if (!Number.isFinite(v)) throw new Error(`Column ${col.name}: ${JSON.stringify(input.value)} is not a number.`);
          return v;
        };
      }
      // categories, then "other…" (free text) and "(missing)"; read by index, so
      // no category can pass for either
      const select = document.createElement("select");
      select.id = `col-${j}`;
      select.name = col.name;
      for (const value of col.categories) {
        const opt = document.createElement("option");
        opt.value = value;
        opt.textContent = value;
        select.appendChild(opt);
      }
      const other = document.createElement("option");
      other.textContent = "other…";
      other.dataset.choice = "other";
      const missing = document.createElement("option");
      missing.textContent = "(missing)";
      missing.dataset.choice = "missing";
      select.append(other, missing);
      const otherText = document.createElement("input");
      otherText.type = "text";
      otherText.id = `col-${j}-other`;
      otherText.className = "other";
      otherText.placeholder = `another ${col.name}`;
      otherText.setAttribute("aria-label", `${col.name}: another value`);
      otherText.hidden = true;
      select.addEventListener("change", () => {
        otherText.hidden = select.selectedIndex !== col.categories.length;
      });
      field.append(select, otherText);
      return () => {
        const k = select.selectedIndex;
        if (k >= 0 && k < col.categories.length) return col.categories[k];
        if (k === col.categories.length) {
          if (otherText.value === "") throw new Error(`Column ${col.name}: type the other value, or pick one.`);
          return otherText.value;
        }
        return null;
      };
    });
    return {
      body() {
        // fromEntries makes own keys, whatever the names (even __proto__)
        return JSON.stringify(Object.fromEntries(columns.map((col, j) => [col.name, readers[j]()])));
      },
      reference: () => null,
    };
  }

  const schema = await loadSchema();
  const form = schema ? schemaMode(schema) : labMode();
  document.body.dataset.mode = schema ? "schema" : "lab";

  // ---- decision and reasons ------------------------------------------------------------

  // The API URL asking for the top REASONS reasons of every row.
  function explainUrl(api) {
    const url = new URL(api);
    url.searchParams.set("explain", String(REASONS));
    return url.toString();
  }

  // A contribution with its sign: two decimals from 1 up, two significant
  // digits below (a probability's contributions are often thousandths).
  function signed(x) {
    const a = Math.abs(x);
    const digits = a >= 100 ? a.toFixed(0) : a >= 1 ? a.toFixed(2) : a === 0 ? "0" : String(Number(a.toPrecision(2)));
    return `${x >= 0 ? "+" : "\u2212"}${digits}`;
  }
  // A feature's value as the answer gave it: a number, a category, or null (missing).
  function shownValue(v) {
    if (v === null || v === undefined) return "missing";
    if (typeof v === "number") return Math.abs(v) >= 1e4 ? v.toFixed(0) : String(Number(v.toPrecision(4)));
    return JSON.stringify(String(v));
  }
  const clip = (text, n) => (text.length > n ? `${text.slice(0, n - 1)}\u2026` : text);

  function showDecision(d) {
    const el = $("decision");
    el.textContent = "";
    delete el.dataset.action;
    if (!d || (d.action !== "approve" && d.action !== "review")) {
      el.hidden = true;
      return;
    }
    const strong = document.createElement("strong");
    strong.textContent = d.action === "review" ? "review" : "approve";
    el.append("Model's decision: ", strong);
    el.append(d.action === "review"
      ? " \u2014 the score is at or above the model's decision threshold."
      : " \u2014 the score is below the model's decision threshold.");
    if (typeof d.expected_loss === "number" && Number.isFinite(d.expected_loss)) {
      el.append(` Expected loss: ${d.expected_loss.toFixed(2)} (fraud probability \u00d7 amount).`);
    }
    el.className = `decision ${d.action}`;
    el.dataset.action = d.action;
    el.hidden = false;
  }

  const svg = (tag, attrs, text) => {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
  };

  // The reasons of one row as bars around a zero axis, scaled to the largest |contribution|.
  function showReasons(ex) {
    const chart = $("reasons-chart");
    chart.replaceChildren();
    const reasons = ex && Array.isArray(ex.reasons)
      ? ex.reasons.filter((r) => r && typeof r.feature === "string" && typeof r.contribution === "number"
        && Number.isFinite(r.contribution))
      : [];
    if (reasons.length === 0) {
      $("reasons").hidden = true;
      return;
    }
    const W = 680, ROW = 30, TOP = 6, LABEL = 230, GAP = 62;
    const axis = LABEL + (W - LABEL) / 2;
    const half = (W - LABEL) / 2 - GAP;
    const H = TOP * 2 + ROW * reasons.length;
    chart.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const biggest = Math.max(...reasons.map((r) => Math.abs(r.contribution))) || 1;
    reasons.forEach((r, i) => {
      const y = TOP + i * ROW;
      const c = r.contribution;
      const w = (Math.abs(c) / biggest) * half;
      const side = c > 0 ? "towards" : c < 0 ? "away" : "none";
      const name = `${clip(r.feature, 18)} = ${clip(shownValue(r.value), 10)}`;
      const label = svg("text", { x: LABEL - 8, y: y + ROW / 2 + 4, "text-anchor": "end", class: "label" }, name);
      label.appendChild(svg("title", {}, `${r.feature} = ${shownValue(r.value)}`));
      const bar = svg("rect", {
        x: c >= 0 ? axis : axis - w, y: y + 5, width: Math.max(w, 0), height: ROW - 10, rx: 3,
        class: `bar ${side}`, "data-feature": r.feature, "data-contribution": c,
      });
      bar.appendChild(svg("title", {}, `${r.feature}: ${signed(c)} (${side === "away" ? "away from" : side} fraud)`));
      const amount = svg("text", {
        x: c >= 0 ? axis + w + 5 : axis - w - 5, y: y + ROW / 2 + 4,
        "text-anchor": c >= 0 ? "start" : "end", class: "amount",
      }, signed(c));
      chart.append(label, bar, amount);
    });
    chart.appendChild(svg("line", { x1: axis, x2: axis, y1: 0, y2: H, class: "axis" }));
    chart.dataset.axis = String(axis);
    const space = ex.space === "log_odds" ? "the log-odds of fraud"
      : ex.space === "probability" ? "the fraud probability" : `${String(ex.space)} (the model's output)`;
    let text = `Contributions add up in ${space}`;
    if (typeof ex.base === "number" && typeof ex.value === "number") {
      const rest = ex.value - ex.base - reasons.reduce((s, r) => s + r.contribution, 0);
      text += `: base ${signed(ex.base)}, the ${reasons.length} shown ${signed(reasons.reduce((s, r) => s + r.contribution, 0))}`
        + `, all others ${signed(rest)} = ${signed(ex.value)}, the model's own output for this transaction`
        + " (before calibration).";
    } else {
      text += ".";
    }
    $("reasons-space").textContent = text;
    $("reasons").dataset.space = String(ex.space);
    $("reasons").hidden = false;
  }

  // ---- predict ----------------------------------------------------------------------

  $("predict").addEventListener("click", async () => {
    $("error").hidden = true;
    let body;
    try {
      body = form.body();
    } catch (e) {
      return showError(e.message);
    }
    $("predict").disabled = true;
    try {
      const resp = await fetch(explainUrl(config.apiUrl), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body,
      });
      const answer = await resp.json().catch(() => ({}));
      if (!resp.ok) return showError(`The API answered ${resp.status}: ${answer.error || resp.statusText}`);
      // the lab's parsing path
      const fraud = answer.result.classifications[0].classes[1].score;
      const normal = answer.result.classifications[0].classes[0].score;
      $("result").hidden = false;
      $("normal-pct").textContent = pct(normal);
      $("fraud-pct").textContent = pct(fraud);
      $("normal-bar").style.width = pct(normal);
      $("fraud-bar").style.width = pct(fraud);
      const alert = fraud >= config.threshold;
      $("alert").hidden = !alert;
      $("alert-score").textContent = pct(fraud);
      $("alert-threshold").textContent = pct(config.threshold);
      $("verdict").textContent = alert ? "Flagged as fraud: an alert was sent." : "No alert: the fraud score is below the threshold.";
      // the sibling keys, when the server explains
      showDecision(Array.isArray(answer.result.decisions) ? answer.result.decisions[0] : null);
      showReasons(Array.isArray(answer.result.explanations) ? answer.result.explanations[0] : null);
      document.body.dataset.fraudScore = String(fraud);
      if (alert) {
        fetch("/alerts", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ score: fraud, example: form.reference() }),
        }).catch(() => {});
      }
    } catch (e) {
      showError(`Could not reach the API at ${config.apiUrl}: ${e}`);
    } finally {
      $("predict").disabled = false;
    }
  });
})();
