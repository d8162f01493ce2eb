/* An email shown as a mail client shows it, shared by the editors and the designer page:
 * - at its real width (Desktop 680 px, Mobile 375 px), zoomed to fit when the pane is
 *   narrower, with the zoom said next to the buttons;
 * - in light or dark (the server decides the email's prefers-color-scheme queries);
 * - and, in the editors, replaced without a blank frame or a jump to the top: the next
 *   version loads into a hidden frame, takes the shown one's scroll position, then swaps in.
 * The frames are sandboxed without scripts; allow-same-origin only lets this script read
 * their scroll position. */
(function () {
  "use strict";
  const WIDTHS = { desktop: 680, mobile: 375 };
  const HEIGHT = 560;

  // The editors' shared pieces: the form that posts the HTML preview into a frame, the
  // problem lists, and the inbox row.
  window.mailroomPreviewParts = {
    // The HTML preview is a real POST into the frame (so its response's CSP applies). The
    // form lives outside the admin's form: a nested form would add its fields to the saved ones.
    hiddenForm: function (action, csrf, names) {
      const form = document.createElement("form");
      form.method = "post";
      form.action = action;
      form.hidden = true;
      ["csrfmiddlewaretoken"].concat(names).forEach(function (name) {
        const input = document.createElement("input");
        input.type = "hidden";
        input.name = name;
        form.appendChild(input);
      });
      form.elements.csrfmiddlewaretoken.value = csrf;
      document.body.appendChild(form);
      return form;
    },
    // A function that posts the form's values to `url` and resolves to the JSON answer, or
    // to null when a later call was made meanwhile (so an old answer never wins).
    latestJSON: function (url, csrf) {
      let asked = 0;
      return function (values) {
        const ask = ++asked;
        const body = new FormData();
        Object.keys(values).forEach(function (key) { body.append(key, values[key]); });
        return fetch(url, {
          method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRFToken": csrf },
        }).then(function (response) {
          if (!response.ok) throw new Error("Preview failed (" + response.status + ")");
          return response.json();
        }).then(function (result) { return ask === asked ? result : null; });
      };
    },
    // A short line per problem (text only: messages quote the template).
    showProblems: function (box, problems) {
      box.innerHTML = "";
      box.hidden = !problems.length;
      problems.forEach(function (problem) {
        const line = document.createElement("div");
        const where = problem.part || (problem.field || "").replace("_", " ");
        line.textContent = where + (problem.line ? ", line " + problem.line : "") + ": " + problem.message;
        box.appendChild(line);
      });
    },
    showInbox: function (result) {
      const sender = result.sender;
      document.getElementById("mailroom-from-name").textContent = sender.name || sender.address;
      document.getElementById("mailroom-from-address").textContent = sender.name ? sender.address : "";
      document.getElementById("mailroom-avatar").textContent = (sender.name || sender.address || "?").charAt(0).toUpperCase();
      document.getElementById("mailroom-subject").textContent = result.subject;
      document.getElementById("mailroom-preheader").textContent = result.preheader;
    },
  };

  window.mailroomEmailFrame = function (holder) {
    const stage = holder.querySelector(".mailroom-stage");
    const zoom = document.getElementById(holder.dataset.zoom);
    let shown = stage.querySelector("iframe.mailroom-shown");
    let spare = stage.querySelector("iframe.mailroom-spare");
    let width = holder.dataset.width || "desktop";
    let scheme = holder.dataset.scheme || "light";

    function fit() {
      const real = WIDTHS[width];
      const room = holder.clientWidth;
      const scale = room > 0 ? Math.min(1, room / real) : 1;
      stage.style.width = real + "px";
      stage.style.height = HEIGHT + "px";
      stage.style.transform = scale < 1 ? "scale(" + scale + ")" : "";
      holder.style.height = Math.ceil(HEIGHT * scale) + "px";
      stage.style.marginLeft = Math.max(0, (room - real * scale) / 2) + "px";
      holder.dataset.scale = scale.toFixed(3);
      if (zoom) {
        zoom.textContent = real + " px" + (scale < 1 ? " · zoomed to " + Math.round(scale * 100) + "%" : " · 100%");
      }
    }

    function scrollOf(frame) {
      try { return frame.contentWindow.scrollY || 0; } catch (error) { return 0; }
    }

    // Load the next version into the spare frame (`load(frameName)` starts the navigation);
    // when it has loaded, it gets the shown frame's scroll position and takes its place.
    function replace(load) {
      const next = spare;
      next.onload = function () {
        next.onload = null;
        try { next.contentWindow.scrollTo(0, scrollOf(shown)); } catch (error) { /* empty frame */ }
        next.classList.replace("mailroom-spare", "mailroom-shown");
        shown.classList.replace("mailroom-shown", "mailroom-spare");
        next.removeAttribute("aria-hidden");
        next.removeAttribute("tabindex");
        shown.setAttribute("aria-hidden", "true");
        shown.setAttribute("tabindex", "-1");
        const id = shown.id;
        shown.id = next.id;
        next.id = id;
        spare = shown;
        shown = next;
        holder.dispatchEvent(new CustomEvent("mailroom:swapped"));
      };
      load(next.name);
    }

    function choose(group, value) {
      holder.parentElement.querySelectorAll("button[data-" + group + "]").forEach(function (button) {
        button.setAttribute("aria-pressed", String(button.dataset[group] === value));
      });
    }
    holder.parentElement.querySelectorAll("button[data-width]").forEach(function (button) {
      button.addEventListener("click", function () {
        width = button.dataset.width;
        holder.dataset.width = width;
        choose("width", width);
        fit();
        holder.dispatchEvent(new CustomEvent("mailroom:width"));
      });
    });
    holder.parentElement.querySelectorAll("button[data-scheme]").forEach(function (button) {
      button.addEventListener("click", function () {
        scheme = button.dataset.scheme;
        holder.dataset.scheme = scheme;
        choose("scheme", scheme);
        holder.dispatchEvent(new CustomEvent("mailroom:scheme"));
      });
    });
    if (window.ResizeObserver) new ResizeObserver(fit).observe(holder);
    window.addEventListener("resize", fit);
    fit();

    return {
      replace: replace,
      scheme: function () { return scheme; },
      width: function () { return width; },
      shown: function () { return shown; },
    };
  };
})();
