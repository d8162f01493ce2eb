/* Mailroom template editor: CodeMirror on the bodies and a live preview of the unsaved form.
 * The HTML preview is posted into a sandboxed iframe whose response carries a CSP that
 * forbids scripts; subject, plain text and errors come back as JSON. */
(function () {
  "use strict";
  const DEBOUNCE_MS = 300;

  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  ready(function () {
    const panel = document.getElementById("mailroom-preview");
    const form = document.getElementById("template_form");
    if (!panel || !form) return;
    const field = (name) => form.querySelector("[name=" + name + "]");
    const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
    const samples = JSON.parse(document.getElementById("mailroom-samples").textContent);
    const sampleSelect = document.getElementById("mailroom-sample");
    const payloadBox = document.getElementById("mailroom-payload");
    const parts = window.mailroomPreviewParts;
    const htmlForm = parts.hiddenForm(panel.dataset.previewHtmlUrl, csrf,
      ["subject", "preheader", "layout", "html_body", "text_body", "payload", "locale",
        "application_id", "organization_id", "scheme"]);
    const holder = document.getElementById("mailroom-frame-holder");
    const email = window.mailroomEmailFrame(holder);
    const inbox = document.getElementById("mailroom-inbox");
    const editors = {};
    let timer = null;
    const askPreview = parts.latestJSON(panel.dataset.previewUrl, csrf);

    // The preview's own controls (sample, payload, test address) are not edits.
    const edited = window.mailroomAskBeforeLeaving(form, "#mailroom-preview, #mailroom-draft");

    // Code editors (vendored CodeMirror 5); the textareas stay the form's source of truth.
    ["html_body", "text_body"].forEach(function (name) {
      const textarea = field(name);
      if (!textarea || !window.CodeMirror) return;
      const editor = window.mailroomCodeEditor(textarea, name === "html_body" ? "django" : "text/plain");
      editor.getWrapperElement().dataset.field = name;
      editor.on("change", function () { editor.save(); edited(); schedule(); });
      editors[name] = editor;
    });

    function currentType() {
      const select = field("usage_type");
      return (select && select.value) || "Generic";
    }
    function fillSamples() {
      const names = Object.keys(samples[currentType()] || samples.Generic);
      sampleSelect.innerHTML = "";
      names.forEach(function (name) {
        const option = document.createElement("option");
        option.value = option.textContent = name;
        sampleSelect.appendChild(option);
      });
      loadSample();
    }
    function loadSample() {
      const payload = Object.assign({}, (samples[currentType()] || samples.Generic)[sampleSelect.value]);
      const locale = field("locale") && field("locale").value;
      if (locale && "locale" in payload) payload.locale = locale;
      payloadBox.value = JSON.stringify(payload, null, 2);
      schedule();
    }

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(refresh, DEBOUNCE_MS);
    }
    function content() {
      return {
        subject: field("subject").value, preheader: field("preheader").value,
        layout: field("layout").value, html_body: field("html_body").value,
        text_body: field("text_body").value, payload: payloadBox.value,
        locale: field("locale").value, usage_type: currentType(),
        from_email: field("from_email") ? field("from_email").value : "",
        // The sample is of the scope's application and organization (their brand and sender).
        application_id: field("application_id") ? field("application_id").value : "",
        organization_id: field("organization_id") ? field("organization_id").value : "",
      };
    }
    function markGutters(problems) {
      Object.keys(editors).forEach(function (name) {
        const editor = editors[name];
        editor.clearGutter("mailroom-marks");
        problems.forEach(function (problem) {
          if (problem.field !== name || !problem.line) return;
          const marker = document.createElement("span");
          marker.className = "mailroom-mark mailroom-mark-" + problem.kind;
          marker.textContent = problem.kind === "error" ? "●" : "▲";
          marker.title = problem.message;
          editor.setGutterMarker(problem.line - 1, "mailroom-marks", marker);
        });
      });
    }
    function refresh() {
      const data = content();
      askPreview(data).then(function (result) {
        if (!result) return;
        parts.showInbox(result);
        document.getElementById("mailroom-text").textContent = result.text;
        parts.showProblems(document.getElementById("mailroom-errors"), result.errors);
        parts.showProblems(document.getElementById("mailroom-warnings-list"), result.warnings);
        document.getElementById("mailroom-warnings").hidden = !result.warnings.length;
        markGutters(
          result.errors.map(function (e) { return Object.assign({ kind: "error" }, e); })
            .concat(result.warnings.map(function (w) { return Object.assign({ kind: "warning" }, w); })));
      }).catch(function (error) {
        parts.showProblems(document.getElementById("mailroom-errors"), [{ part: "preview", message: error.message }]);
      });
      ["subject", "preheader", "layout", "html_body", "text_body", "payload", "locale",
        "application_id", "organization_id"].forEach(function (key) {
        htmlForm.elements[key].value = data[key];
      });
      htmlForm.elements.scheme.value = email.scheme();
      email.replace(function (target) { htmlForm.target = target; htmlForm.submit(); });
    }

    function post(url, extra) {
      const body = new FormData();
      const data = Object.assign(content(), extra);
      Object.keys(data).forEach(function (key) { body.append(key, data[key]); });
      return fetch(url, {
        method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRFToken": csrf },
      }).then(function (response) { return response.json(); });
    }

    // A test send is followed until it is final: queued → sent, or failed with the reason.
    const testResult = document.getElementById("mailroom-test-result");
    function showTestState(state) {
      testResult.innerHTML = "";
      testResult.dataset.status = state.status;
      const words = document.createElement("span");
      words.textContent = "Test email " + state.label.toLowerCase() + (state.error ? ": " + state.error : state.final ? "." : "…");
      testResult.appendChild(words);
      if (state.log_url) {
        const link = document.createElement("a");
        link.href = state.log_url;
        link.textContent = "See it in the message log";
        testResult.appendChild(document.createTextNode(" "));
        testResult.appendChild(link);
      }
    }
    let following = 0;  // a new test send stops following the one before
    function follow(state, tries, which) {
      if (which !== following) return;
      showTestState(state);
      if (state.final) return;
      if (tries > 90) {
        testResult.appendChild(document.createTextNode(" Still waiting for the worker: is it running?"));
        return;
      }
      setTimeout(function () {
        fetch(state.status_url, { credentials: "same-origin" })
          .then(function (response) { return response.json(); })
          .then(function (next) { follow(next, tries + 1, which); })
          .catch(function () { follow(state, tries + 1, which); });
      }, tries < 10 ? 500 : 2000);
    }
    document.getElementById("mailroom-test-button").addEventListener("click", function () {
      testResult.textContent = "Sending…";
      const which = ++following;
      post(panel.dataset.testSendUrl, {
        to: document.getElementById("mailroom-test-to").value,
      }).then(function (answer) {
        if (answer.error) testResult.textContent = answer.error;
        else follow(answer, 0, which);
      });
    });
    panel.querySelectorAll("[data-share]").forEach(function (button) {
      button.addEventListener("click", function () {
        post(panel.dataset.shareUrl, button.dataset.share === "edits" ? { edits: "1" } : {}).then(function (answer) {
          const output = document.getElementById("mailroom-share-url");
          output.hidden = false;
          output.value = answer.url;
          document.getElementById("mailroom-share-shows").textContent = "This link shows " + answer.shows + ".";
          output.select();
        });
      });
    });
    holder.addEventListener("mailroom:width", function () { inbox.dataset.width = email.width(); });
    holder.addEventListener("mailroom:scheme", function () { inbox.dataset.scheme = email.scheme(); refresh(); });

    sampleSelect.addEventListener("change", loadSample);
    payloadBox.addEventListener("input", schedule);
    ["subject", "preheader", "locale", "from_email", "application_id", "organization_id"].forEach(function (name) {
      if (field(name)) field(name).addEventListener("input", schedule);
    });
    field("layout").addEventListener("change", schedule);
    field("usage_type").addEventListener("change", fillSamples);
    fillSamples();
  });
})();
