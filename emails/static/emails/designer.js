/* The designer's page: the email at its real width (zoomed to fit), light or dark, and the
 * rendered HTML copied to the clipboard (emails/emailframe.js does the frame). */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    const holder = document.getElementById("preview-holder");
    if (!holder) return;
    const email = window.mailroomEmailFrame(holder);
    holder.addEventListener("mailroom:scheme", function () {
      email.replace(function (name) {
        document.querySelector("iframe[name=" + name + "]").src = holder.dataset.src + "&scheme=" + email.scheme();
      });
    });
    const copy = document.getElementById("preview-copy");
    const said = document.getElementById("preview-copied");
    copy.addEventListener("click", function () {
      fetch(copy.dataset.src, { credentials: "omit" })
        .then(function (response) { return response.text(); })
        .then(function (html) { return navigator.clipboard.writeText(html); })
        .then(function () { said.textContent = "Copied the email's HTML."; })
        .catch(function () { said.textContent = "Could not copy: use Download HTML."; });
    });
  });
})();
