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

  // The HTML preview is a real POST into the iframe (so its response's CSP applies). The form
  // lives outside the admin's form: a nested form would add its fields to the saved ones.
  function hiddenForm(action, csrf) {
    const form = document.createElement("form");
    form.method = "post";
    form.action = action;
    form.target = "mailroom-frame";
    form.hidden = true;
    ["csrfmiddlewaretoken", "subject", "preheader", "layout", "html_body", "text_body", "payload", "locale"].forEach(function (name) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      form.appendChild(input);
    });
    form.elements.csrfmiddlewaretoken.value = csrf;
    document.body.appendChild(form);
    return form;
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
    const htmlForm = hiddenForm(panel.dataset.previewHtmlUrl, csrf);
    const frame = document.getElementById("mailroom-frame");
    let timer = null;

    // The preview's own controls (sample, payload, test address) are not edits.
    const edited = window.mailroomAskBeforeLeaving(form, "#mailroom-preview");

    // Code editors (vendored CodeMirror 5); the textareas stay the form's source of truth.
    ["html_body", "text_body"].forEach(function (name) {
      const textarea = field(name);
      if (!textarea || !window.CodeMirror) return;
      const editor = window.mailroomCodeEditor(textarea, name === "html_body" ? "django" : "text/plain");
      editor.getWrapperElement().dataset.field = name;
      editor.on("change", function () { editor.save(); edited(); schedule(); });
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
        locale: field("locale").value,
      };
    }
    function showErrors(errors) {
      const box = document.getElementById("mailroom-errors");
      box.innerHTML = "";
      box.hidden = !errors.length;
      errors.forEach(function (error) {
        const line = document.createElement("div");
        line.textContent = error.part + (error.line ? ", line " + error.line : "") + ": " + error.message;
        box.appendChild(line);
      });
    }
    function refresh() {
      const data = content();
      const body = new FormData();
      Object.keys(data).forEach(function (key) { body.append(key, data[key]); });
      fetch(panel.dataset.previewUrl, {
        method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRFToken": csrf },
      }).then(function (response) {
        if (!response.ok) throw new Error("Preview failed (" + response.status + ")");
        return response.json();
      }).then(function (result) {
        document.getElementById("mailroom-subject").textContent = result.subject;
        document.getElementById("mailroom-text").textContent = result.text;
        showErrors(result.errors);
      }).catch(function (error) {
        showErrors([{ part: "preview", message: error.message }]);
      });
      Object.keys(data).forEach(function (key) { htmlForm.elements[key].value = data[key]; });
      htmlForm.submit();
    }

    function post(url, extra) {
      const body = new FormData();
      const data = Object.assign(content(), extra);
      Object.keys(data).forEach(function (key) { body.append(key, data[key]); });
      return fetch(url, {
        method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRFToken": csrf },
      }).then(function (response) { return response.json(); });
    }

    document.getElementById("mailroom-test-button").addEventListener("click", function () {
      const result = document.getElementById("mailroom-test-result");
      result.textContent = "Sending…";
      post(panel.dataset.testSendUrl, {
        to: document.getElementById("mailroom-test-to").value, usage_type: currentType(),
      }).then(function (answer) {
        result.textContent = answer.error ? answer.error : "Test email queued (" + answer.status + ").";
      });
    });
    const share = document.getElementById("mailroom-share-button");
    if (share) {
      share.addEventListener("click", function () {
        post(panel.dataset.shareUrl, {}).then(function (answer) {
          const output = document.getElementById("mailroom-share-url");
          output.hidden = false;
          output.value = answer.url;
          output.select();
        });
      });
    }
    panel.querySelectorAll("[data-width]").forEach(function (button) {
      button.addEventListener("click", function () {
        panel.querySelectorAll("[data-width]").forEach(function (other) { other.classList.remove("active"); });
        button.classList.add("active");
        frame.className = button.dataset.width;
      });
    });

    sampleSelect.addEventListener("change", loadSample);
    payloadBox.addEventListener("input", schedule);
    ["subject", "preheader", "locale"].forEach(function (name) { field(name).addEventListener("input", schedule); });
    field("layout").addEventListener("change", schedule);
    field("usage_type").addEventListener("change", fillSamples);
    fillSamples();
  });
})();
