/*
 * The receipt page's check of its inclusion proof, when the audit log's verifier
 * (/static/audit/verify-receipt.js, window.LedgerReceipt) is on the page. It fetches the
 * receipt's proof from this server, verifies it in the browser and writes what it found into
 * #proof-status, in the page's language (the texts are data attributes of #proof). Without
 * JavaScript or without the verifier, the server's text stays: it says what was not checked.
 */
(function () {
  "use strict";
  function run() {
    var box = document.getElementById("proof");
    var status = document.getElementById("proof-status");
    if (!box || !status) return;
    var say = function (key, detail) {
      status.textContent = box.dataset[key] + (detail ? " (" + detail + ")" : "");
    };
    if (!window.LedgerReceipt || !window.fetch) return say("textNoVerifier");
    var key = box.dataset.verifierKey;
    if (!key) return say("textNoKey");
    fetch(box.dataset.proofUrl, { headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (receipt) {
        return window.LedgerReceipt.verifyReceipt(receipt, key);
      })
      .then(function (result) {
        if (result.ok) return say("textOk", box.dataset.textSize + " " + result.size);
        var failed = (result.checks || []).filter(function (c) { return c.ok !== true; });
        say(failed.some(function (c) { return c.ok === false; }) ? "textFailed" : "textUnchecked",
            failed.map(function (c) { return c.name + ": " + c.detail; }).join("; "));
      })
      .catch(function (error) { say("textUnchecked", String(error && error.message)); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
  else run();
})();
