// The security check the server asks for when a payment looks risky (gateway/challenge.py): one
// Web Worker per core (up to 4) searches for the number, then the hidden "altcha" field carries
// the solution and Pay is enabled. Nothing to click; the status line tells screen readers when
// it starts and ends. Without JavaScript the page's <noscript> text says what to do.
(function () {
  "use strict";
  var box = document.getElementById("challenge");
  if (!box) return;
  var $ = function (id) { return document.getElementById(id); };
  var field = $("altcha"), button = $("pay-button"), status = $("challenge-status"), bar = $("challenge-progress");
  var data = JSON.parse(box.getAttribute("data-challenge")), started = Date.now(), workers = [], tried = 0, exhausted = 0;

  function say(what) {
    status.textContent = box.getAttribute("data-" + what);
    box.setAttribute("data-state", what);
  }
  function stop() { workers.forEach(function (worker) { worker.terminate(); }); }
  function solved(number) {
    stop();
    field.value = btoa(JSON.stringify({
      algorithm: data.algorithm, challenge: data.challenge, number: number, salt: data.salt,
      signature: data.signature, took: Date.now() - started
    }));
    bar.value = bar.max;
    button.disabled = false;
    say("solved");
  }
  function failed() { stop(); say("failed"); }
  function heard(event) {
    var answer = event.data;
    if (typeof answer.number === "number") solved(answer.number);
    else if (answer.tried) { tried += answer.tried; bar.value = Math.min(tried, bar.max); }
    else if (answer.exhausted && ++exhausted === workers.length) failed();
  }

  if (!window.Worker || !window.crypto || !window.crypto.subtle) { failed(); return; }
  say("working");
  var count = Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1));
  try {
    for (var k = 0; k < count; k++) {
      var worker = new Worker(box.getAttribute("data-worker"));
      worker.onmessage = heard;
      worker.onerror = failed;
      workers.push(worker);
      worker.postMessage({ salt: data.salt, challenge: data.challenge, max: data.maxnumber, first: k, stride: count });
    }
  } catch (error) {
    failed();
  }
})();
