// The security check's search (gateway/challenge.py): try numbers first, first+stride, ... up to max
// until SHA-256(salt + number) is the challenge. WebCrypto answers asynchronously, so each batch
// is hashed at once; the page's own thread never does this work and stays responsive.
"use strict";
var BATCH = 250;

function bytesOf(hex) {
  var out = new Uint8Array(hex.length / 2);
  for (var i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

function matches(buffer, target) {
  var bytes = new Uint8Array(buffer);
  for (var i = 0; i < bytes.length; i++) if (bytes[i] !== target[i]) return false;
  return true;
}

self.onmessage = async function (event) {
  var job = event.data, target = bytesOf(job.challenge), encoder = new TextEncoder();
  for (var start = job.first; start <= job.max; start += BATCH * job.stride) {
    var numbers = [];
    for (var n = start; numbers.length < BATCH && n <= job.max; n += job.stride) numbers.push(n);
    var digests = await Promise.all(numbers.map(function (number) {
      return crypto.subtle.digest("SHA-256", encoder.encode(job.salt + number));
    }));
    for (var i = 0; i < digests.length; i++) {
      if (matches(digests[i], target)) { self.postMessage({ number: numbers[i] }); return; }
    }
    self.postMessage({ tried: numbers.length });
  }
  self.postMessage({ exhausted: true });
};
