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
"use strict";
(async function () {
  const $ = (id) => document.getElementById(id);
  const config = await (await fetch("/config.json")).json();
  const { examples } = await (await fetch("/examples.json")).json();
  $("api-url").textContent = config.apiUrl;

  const pct = (p) => `${(100 * p).toFixed(2)}%`;
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
      const resp = await fetch(config.apiUrl, {
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
