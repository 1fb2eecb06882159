// Submit the login proof to the hub at once. Coming back to this page (back button,
// page cache) must not resend a used proof: start again at the front door instead.
"use strict";
window.addEventListener("pageshow", function (event) {
  if (event.persisted) {
    window.location.replace("/");
  }
});
// A notice on the page (a silent node passed over) is left readable for a few seconds first.
var delay = 1000 * Number(document.getElementById("handoff").dataset.delay || 0);
window.setTimeout(function () {
  document.getElementById("handoff").submit();
}, delay);
