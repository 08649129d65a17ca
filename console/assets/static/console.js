// Tarifa console: small progressive enhancements. Every page works
// without this script; it only adds confirmations, "tick all" and the
// "/" shortcut to the search box.
"use strict";
document.addEventListener("submit", function (e) {
  var msg = e.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) { e.preventDefault(); }
});
document.addEventListener("change", function (e) {
  var name = e.target.getAttribute("data-check-all");
  if (!name) { return; }
  var form = e.target.form || document;
  form.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (b) { b.checked = e.target.checked; });
});
document.addEventListener("keydown", function (e) {
  if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) { return; }
  var t = e.target.tagName;
  if (t === "INPUT" || t === "TEXTAREA" || t === "SELECT") { return; }
  var box = document.querySelector("[data-search]");
  if (box) { e.preventDefault(); box.focus(); box.select(); }
});
