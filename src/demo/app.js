// ccfraud demo: calls the prediction API (ccfraud serve's /invocations, or a
// deployed API Gateway URL in front of the lab's Lambda), shows the normal and
// fraud probabilities, and raises an alert at or above the threshold.
"use strict";
(async function () {
  const $ = (id) => document.getElementById(id);
  const config = await (await fetch("/config.json")).json();
  const { examples } = await (await fetch("/examples.json")).json();
  $("api-url").textContent = config.apiUrl;

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

  const pct = (p) => `${(100 * p).toFixed(2)}%`;
  function showError(msg) {
    $("error").textContent = msg;
    $("error").hidden = false;
  }

  $("predict").addEventListener("click", async () => {
    $("error").hidden = true;
    let features;
    try {
      features = JSON.parse($("features").value);
    } catch (e) {
      return showError("The transaction must be a JSON list of 29 numbers.");
    }
    if (!Array.isArray(features) || features.length !== 29 || !features.every(Number.isFinite)) {
      return showError("The transaction must be a JSON list of 29 finite numbers (V1…V28, standardized Amount).");
    }
    $("predict").disabled = true;
    try {
      const resp = await fetch(config.apiUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(features),
      });
      const body = await resp.json().catch(() => ({}));
      if (!resp.ok) return showError(`The API answered ${resp.status}: ${body.error || resp.statusText}`);
      // the lab's parsing path
      const fraud = body.result.classifications[0].classes[1].score;
      const normal = body.result.classifications[0].classes[0].score;
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
          body: JSON.stringify({ score: fraud, example: $("example").value || null }),
        }).catch(() => {});
      }
    } catch (e) {
      showError(`Could not reach the API at ${config.apiUrl}: ${e}`);
    } finally {
      $("predict").disabled = false;
    }
  });
})();
