// Importing a bundle with progress: the upload goes by XMLHttpRequest so
// the page can show how much has arrived, then that the hub is importing,
// then what the import did (or why it was refused). Without JavaScript
// the form posts as usual and the answer is a new page.
"use strict";
(function () {
  const form = document.getElementById("import");
  if (!form || !window.FormData) return;
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const button = form.querySelector("button[type=submit]");
  const mb = (n) => (n / 1048576).toFixed(1) + " MB";
  const say = (text, error) => {
    status.textContent = text;
    status.className = error ? "error" : "ok";
    status.hidden = false;
  };
  form.addEventListener("submit", (e) => {
    const input = form.querySelector("input[type=file]");
    if (!input.files.length) return; // the browser says the file is required
    e.preventDefault();
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    bar.dataset.events = "0";
    bar.max = input.files[0].size || 1;
    bar.value = 0;
    bar.hidden = false;
    button.disabled = true;
    say("Uploading " + input.files[0].name + "…", false);
    xhr.upload.onprogress = (p) => {
      bar.dataset.events = String(Number(bar.dataset.events) + 1);
      if (!p.lengthComputable) return;
      bar.max = p.total;
      bar.value = p.loaded;
      say("Uploading: " + Math.floor((100 * p.loaded) / p.total) + " % (" +
        mb(p.loaded) + " of " + mb(p.total) + ")", false);
    };
    xhr.upload.onload = () => {
      bar.value = bar.max;
      say("Uploaded. The hub is importing it — a large bundle takes a while.", false);
    };
    xhr.onload = () => {
      if (xhr.responseURL && !new URL(xhr.responseURL).pathname.startsWith("/admin/bundles")) {
        // Sent elsewhere (the session ended: the login page).
        location.href = xhr.responseURL;
        return;
      }
      button.disabled = false;
      form.reset();
      // The answer is a whole page: show its message here.
      const page = new DOMParser().parseFromString(xhr.responseText, "text/html");
      const ok = page.querySelector("p.ok[role=status]");
      const problem = page.querySelector(".error");
      if (xhr.status === 200 && ok) {
        say(ok.textContent, false);
      } else {
        say(problem ? problem.textContent : "The hub answered " + xhr.status + ".", true);
      }
      if (xhr.status === 200) {
        // A new form token may have come with the page.
        const token = page.querySelector("#import input[name=csrf]");
        if (token) form.querySelector("input[name=csrf]").value = token.value;
      }
    };
    xhr.onerror = () => {
      button.disabled = false;
      say("The upload stopped: the connection to the hub was lost. Nothing was imported; try again.", true);
    };
    xhr.send(new FormData(form));
  });
})();
