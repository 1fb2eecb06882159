// Submit the login proof to the hub at once. Coming back to this page (back button,
// page cache) must not resend a used proof: start again at the front door instead.
"use strict";
window.addEventListener("pageshow", function (event) {
  if (event.persisted) {
    window.location.replace("/");
  }
});
document.getElementById("handoff").submit();
