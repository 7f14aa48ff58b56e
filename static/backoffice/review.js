// The review queue from the keyboard: up/down move, Enter opens, x selects, a approves, r rejects.
(function () {
  "use strict";
  var table = document.getElementById("queue");
  var dialog = document.getElementById("decide");
  if (!table || !dialog) return;
  var form = dialog.querySelector("form");
  var outcome = document.getElementById("outcome");
  var selectedId = null;

  function t(key) { return dialog.dataset["t" + key.charAt(0).toUpperCase() + key.slice(1)] || key; }
  function rows() { return Array.prototype.slice.call(table.querySelectorAll("tbody tr[data-id]")); }
  function current() { return selectedId ? document.getElementById("row-" + selectedId) : null; }

  function select(row, scroll) {
    rows().forEach(function (r) { r.classList.remove("selected"); r.removeAttribute("aria-selected"); });
    if (!row) { selectedId = null; return; }
    selectedId = row.dataset.id;
    row.classList.add("selected");
    row.setAttribute("aria-selected", "true");
    if (scroll !== false) row.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    var all = rows();
    if (!all.length) return;
    var i = all.indexOf(current());
    select(all[Math.min(all.length - 1, Math.max(0, i + step))]);
  }

  function picked() {
    return rows().filter(function (r) { var c = r.querySelector("input.pick"); return c && c.checked; });
  }

  function say(text, isError) {
    outcome.innerHTML = "";
    var span = document.createElement("span");
    span.className = "outcome" + (isError ? " error" : "");
    span.textContent = text;
    outcome.appendChild(span);
  }

  function open(action, targets) {
    var pending = targets.filter(function (r) { return r.dataset.pending === "1"; });
    var blocked = action === "approve" ? pending.filter(function (r) { return r.dataset.blocked; }) : [];
    var go = pending.filter(function (r) { return blocked.indexOf(r) < 0; });
    if (!go.length) {
      say(blocked.length ? blocked[0].dataset.blocked : t("none"), true);
      return;
    }
    form.elements.action.value = action;
    var ids = form.querySelector(".ids");
    ids.innerHTML = "";
    go.forEach(function (r) {
      var input = document.createElement("input");
      input.type = "hidden"; input.name = "ids"; input.value = r.dataset.id;
      ids.appendChild(input);
    });
    dialog.querySelector("#decide-title").textContent = t(action) + " · " + go.length + " " + t("refunds");
    var will = dialog.querySelector(".will");
    will.innerHTML = "";
    go.slice(0, 5).forEach(function (r) {
      var li = document.createElement("li");
      li.textContent = r.dataset.label + ": " + r.dataset[action];
      will.appendChild(li);
    });
    if (go.length > 5) {
      var li = document.createElement("li");
      li.textContent = "+ " + (go.length - 5) + " " + t("more");
      will.appendChild(li);
    }
    dialog.querySelector(".skipped").textContent = blocked.length
      ? t("blocked") + ": " + blocked.map(function (r) { return r.dataset.label; }).join(", ") : "";
    var confirm = dialog.querySelector("[data-confirm]");
    confirm.className = "btn " + (action === "approve" ? "btn-primary" : "btn-danger");
    confirm.textContent = t(action);
    form.elements.reason.value = "";
    dialog.showModal();
    form.elements.reason.focus();
  }

  function targets() {
    var chosen = picked();
    if (chosen.length) return chosen;
    return current() ? [current()] : [];
  }

  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  document.addEventListener("keydown", function (e) {
    if (dialog.open) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); }
      return;
    }
    if (typing(document.activeElement) || e.ctrlKey || e.metaKey || e.altKey) return;
    switch (e.key) {
      case "ArrowDown": case "j": e.preventDefault(); move(1); break;
      case "ArrowUp": case "k": e.preventDefault(); move(-1); break;
      case "Enter": if (current()) { e.preventDefault(); window.location = current().dataset.url; } break;
      case "a": e.preventDefault(); open("approve", targets()); break;
      case "r": e.preventDefault(); open("reject", targets()); break;
      case "x": case " ":
        var box = current() && current().querySelector("input.pick");
        if (box) { e.preventDefault(); box.checked = !box.checked; }
        break;
    }
  });

  table.addEventListener("click", function (e) {
    var row = e.target.closest("tr[data-id]");
    if (!row) return;
    select(row, false);
    var button = e.target.closest("button[data-action]");
    if (button && !button.disabled) open(button.dataset.action, [row]);
  });

  document.querySelectorAll("[data-bulk]").forEach(function (b) {
    b.addEventListener("click", function () { open(b.dataset.bulk, picked()); });
  });

  var all = document.getElementById("pick-all");
  if (all) all.addEventListener("change", function () {
    rows().forEach(function (r) { var c = r.querySelector("input.pick"); if (c) c.checked = all.checked; });
  });

  dialog.querySelector("[data-close]").addEventListener("click", function () { dialog.close(); });

  // After the decision: the rows were swapped in place (htmx out-of-band); move on to the next
  // row still waiting so an agent can keep going from the keyboard.
  form.addEventListener("htmx:afterRequest", function (e) {
    if (!e.detail.successful) { say(e.detail.xhr.responseText || "Error", true); return; }
    dialog.close();
    if (all) all.checked = false;
  });
  document.body.addEventListener("htmx:afterSettle", function () {
    var row = current();
    if (row && row.dataset.pending === "1") { select(row); return; }
    var list = rows();
    var i = row ? list.indexOf(row) : -1;
    var next = list.slice(i + 1).concat(list.slice(0, i + 1)).filter(function (r) { return r.dataset.pending === "1"; })[0];
    select(next || row);
  });

  select(rows()[0], false);
})();
