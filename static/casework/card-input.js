// Card number field of the manual payout form: checks the Luhn digit as the agent types, so a
// misheard digit is caught while the user is still on the phone. The server checks again.
(function () {
  "use strict";
  function luhn(digits) {
    var sum = 0;
    for (var i = 0; i < digits.length; i++) {
      var d = digits.charCodeAt(digits.length - 1 - i) - 48;
      if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9; }
      sum += d;
    }
    return sum % 10 === 0;
  }
  function check(input) {
    var status = document.getElementById(input.getAttribute("aria-describedby"));
    var digits = input.value.replace(/[\s-]/g, "");
    var state, text;
    if (!digits) { state = ""; text = ""; }
    else if (!/^\d+$/.test(digits)) { state = "bad"; text = input.dataset.luhnBad; }
    else if (digits.length < 12) { state = "short"; text = input.dataset.luhnShort; }
    else if (digits.length > 19 || !luhn(digits)) { state = "bad"; text = input.dataset.luhnBad; }
    else { state = "ok"; text = input.dataset.luhnOk; }
    input.setCustomValidity(state === "bad" ? text : "");
    input.dataset.luhnState = state;
    if (status && (digits || !status.dataset.kept)) { status.textContent = text; status.dataset.state = state; }
  }
  function init() {
    document.querySelectorAll("input[data-luhn]").forEach(function (input) {
      var status = document.getElementById(input.getAttribute("aria-describedby"));
      if (status && status.textContent.trim()) status.dataset.kept = "1";
      input.addEventListener("input", function () { check(input); });
      if (input.value) check(input);
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
