// Progressive enhancement of the card form: brand marks, spacing, "MM/YY", inline checks that
// mirror gateway/cards.py, and a Pay button that cannot be pressed twice. Without it the form
// works the same, checked by the server only.
(function () {
  "use strict";
  var form = document.getElementById("pay-form");
  if (!form || !window.JSON) return;
  var rules = JSON.parse(form.getAttribute("data-rules")), msg = JSON.parse(form.getAttribute("data-messages"));
  var $ = function (id) { return document.getElementById(id); };
  var number = $("card_number"), expiry = $("expiry"), cvc = $("cvc"), holder = $("holder"), button = $("pay-button");
  var mark = $("card_number-mark"), brandText = $("card_number-brand"), sending = false, label = button.textContent;
  var marks = {};
  Array.prototype.forEach.call(form.querySelectorAll("img[data-brand]"), function (img) { marks[img.getAttribute("data-brand")] = img; });
  rules.brands.forEach(function (b) { b.re = new RegExp(b.pattern); });
  var expiryRe = new RegExp(rules.expiry);

  function digitsOf(text) { return text.replace(/\D/g, ""); }
  function detect(digits) {
    for (var i = 0; i < rules.brands.length; i++) if (rules.brands[i].re.test(digits)) return rules.brands[i];
    return null;
  }
  function luhn(digits) {
    var total = 0;
    for (var i = 0; i < digits.length; i++) {
      var v = +digits[digits.length - 1 - i];
      if (i % 2 === 1) v = v > 4 ? v * 2 - 9 : v * 2;
      total += v;
    }
    return total % 10 === 0;
  }
  function groups(brand, digits) {
    var sizes = brand && brand.brand === "amex" ? [4, 6, 5] : brand && brand.brand === "diners" && digits.length <= 14 ? [4, 6, 4] : [4, 4, 4, 4, 3];
    var out = [], at = 0;
    for (var i = 0; i < sizes.length && at < digits.length; i++) { out.push(digits.slice(at, at + sizes[i])); at += sizes[i]; }
    return out.join(" ");
  }
  // Reformat a field while keeping the caret after the same number of digits.
  function reformat(input, text) {
    var caret = input.selectionStart || 0, before = digitsOf(input.value.slice(0, caret)).length;
    input.value = text;
    var pos = 0, seen = 0;
    while (pos < text.length && seen < before) { if (/\d/.test(text[pos])) seen++; pos++; }
    if (document.activeElement === input) input.setSelectionRange(pos, pos);
  }

  function onNumber() {
    var digits = digitsOf(number.value), brand = detect(digits);
    var max = brand ? Math.max.apply(null, brand.lengths) : 19;
    digits = digits.slice(0, max);
    reformat(number, groups(brand, digits));
    number.maxLength = max + 4;
    cvc.maxLength = brand ? brand.cvc : 4;
    var name = brand ? brand.name : "";
    if (brandText.textContent !== name) brandText.textContent = name;
    if (brand && marks[brand.brand]) { mark.src = marks[brand.brand].src; mark.hidden = false; } else { mark.hidden = true; }
    Object.keys(marks).forEach(function (key) { marks[key].classList.toggle("dim", !!brand && key !== brand.brand); });
  }
  function onExpiry(event) {
    var digits = digitsOf(expiry.value).slice(0, 6);
    if (digits.length === 1 && digits > "1") digits = "0" + digits;
    var deleting = event && event.inputType && event.inputType.indexOf("delete") === 0;
    var text = digits.length > 2 || (digits.length === 2 && !deleting) ? digits.slice(0, 2) + "/" + digits.slice(2) : digits;
    reformat(expiry, text);
  }
  function onCvc() { reformat(cvc, digitsOf(cvc.value).slice(0, cvc.maxLength > 0 ? cvc.maxLength : 4)); }

  // The same checks, in the same order, as gateway/cards.py parse_card.
  function check(name) {
    if (name === "card_number") {
      var d = number.value.replace(/[\s-]/g, ""), b;
      if (!d) return msg.number_missing;
      if (!/^\d+$/.test(d)) return msg.number_not_digits;
      b = detect(d);
      if (!b) return msg.brand_unknown;
      if (!b.accepted) return msg.brand_not_accepted;
      if (b.lengths.indexOf(d.length) < 0 || !luhn(d)) return msg.number_invalid;
      if (d.length > rules.maxDigits) return msg.number_too_long;
    } else if (name === "expiry") {
      var m = expiryRe.exec(expiry.value), now = new Date();
      if (m && !m[1]) m = [m[0], m[3], m[4]];
      if (!m || +m[1] < 1 || +m[1] > 12) return msg.expiry_format;
      var year = +m[2] < 100 ? +m[2] + 2000 : +m[2];
      if (year < now.getFullYear() || (year === now.getFullYear() && +m[1] < now.getMonth() + 1)) return msg.expired;
    } else if (name === "cvc") {
      var c = cvc.value.trim(), want = detect(number.value.replace(/[\s-]/g, ""));
      var expected = want && /^\d+$/.test(number.value.replace(/[\s-]/g, "")) ? want.cvc : null;
      if (!/^\d+$/.test(c) || (expected && c.length !== expected) || c.length < 3 || c.length > 4) {
        return expected ? msg["cvc_" + expected] : msg.cvc_any;
      }
    } else if (name === "holder") {
      var h = holder.value.split(/\s+/).filter(Boolean).join(" ");
      if (!h) return msg.holder_missing;
      if (h.length > rules.holderMax) return msg.holder_long;
    }
    return "";
  }
  function show(name, error) {
    var input = $(name), note = $(name + "-error");
    note.textContent = error;
    note.hidden = !error;
    if (error) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
    return error;
  }
  function summary(errors) {
    var old = $("error-summary") || $("decline");
    if (old) old.parentNode.removeChild(old);
    var box = document.createElement("div"), title = document.createElement("p"), strong = document.createElement("strong"), list = document.createElement("ul");
    box.className = "alert"; box.id = "error-summary"; box.tabIndex = -1; box.setAttribute("role", "alert");
    strong.textContent = form.getAttribute("data-summary"); title.appendChild(strong); box.appendChild(title);
    errors.forEach(function (e) {
      var li = document.createElement("li"), a = document.createElement("a");
      a.href = "#" + e[0]; a.textContent = e[1];
      a.addEventListener("click", function (ev) { ev.preventDefault(); $(e[0]).focus(); });
      li.appendChild(a); list.appendChild(li);
    });
    box.appendChild(list);
    form.parentNode.insertBefore(box, form);
    box.focus();
  }

  number.addEventListener("input", onNumber);
  expiry.addEventListener("input", onExpiry);
  cvc.addEventListener("input", onCvc);
  [number, expiry, cvc, holder].forEach(function (input) {
    input.addEventListener("blur", function () { if (input.value || input.getAttribute("aria-invalid")) show(input.id, check(input.id)); });
  });
  form.addEventListener("submit", function (event) {
    if (sending) { event.preventDefault(); return; }
    var errors = [];
    ["card_number", "expiry", "cvc", "holder"].forEach(function (name) {
      var error = show(name, check(name));
      if (error) errors.push([name, error]);
    });
    if (errors.length) { event.preventDefault(); summary(errors); return; }
    sending = true;
    button.setAttribute("aria-disabled", "true");
    button.textContent = button.getAttribute("data-busy");
    form.setAttribute("aria-busy", "true");
  });
  // A page restored from the back/forward cache must be usable again.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { sending = false; button.textContent = label; button.removeAttribute("aria-disabled"); form.removeAttribute("aria-busy"); }
  });
  var focusTarget = $("error-summary") || $("decline");
  if (focusTarget && document.activeElement !== focusTarget) focusTarget.focus();
  onNumber();
})();
