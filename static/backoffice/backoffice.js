// The back office's few behaviours. Everything else is server-rendered; htmx swaps rows in place.
(function () {
  "use strict";

  // Selects that submit their form when changed (language switcher, filters).
  document.addEventListener("change", function (e) {
    if (e.target.matches("[data-autosubmit]")) e.target.form.requestSubmit();
  });

  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  // `/` focuses the search box on every screen.
  document.addEventListener("keydown", function (e) {
    if (e.key === "/" && !typing(document.activeElement) && !e.ctrlKey && !e.metaKey && !e.altKey) {
      var box = document.getElementById("global-search");
      if (box) { e.preventDefault(); box.focus(); box.select(); }
    }
  });
})();
