// Passkeys (WebAuthn) for three forms: adding a passkey (#passkey-register), the second
// factor (#passkey-verify) and signing in without a password (#passkey-login). Each form
// names its options endpoint in data-options; the script fetches the options (POST, with
// the form's CSRF token), asks the browser's authenticator, puts its JSON answer in the
// form's hidden `credential` field and submits the form. Served from /static/ under the
// strict Content-Security-Policy: no inline script anywhere.
"use strict";

(function () {
  const supported = window.PublicKeyCredential
    && typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function"
    && typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function";

  async function options(form) {
    const response = await fetch(form.dataset.options, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": form.elements.csrf_token.value },
    });
    if (response.redirected) {
      // Adding a passkey is a credential change: an older sign-in (or a remembered one) is
      // sent to sign in again, and comes back to this page.
      window.location.assign(response.url);
      return new Promise(function () {});
    }
    if (!response.ok) throw new Error("options: " + response.status);
    return response.json();
  }

  function wire(id, ceremony) {
    const form = document.getElementById(id);
    if (!form) return;
    if (!supported) { form.hidden = true; return; }
    form.hidden = false;
    form.addEventListener("submit", async function (event) {
      if (form.elements.credential.value) return; // the answer is in: submit for real
      event.preventDefault();
      const error = form.querySelector("[data-passkey-error]");
      if (error) error.hidden = true;
      try {
        const credential = await ceremony(await options(form));
        form.elements.credential.value = JSON.stringify(credential.toJSON());
        // (form.submit is the button named "submit": call the form's own method)
        HTMLFormElement.prototype.submit.call(form);
      } catch (failure) {
        console.error("passkey: " + failure); // the reason, for whoever opens the console
        if (error) error.hidden = false;
      }
    });
  }

  function create(json) {
    return navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(json),
    });
  }

  function get(json) {
    return navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(json),
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    wire("passkey-register", create);
    wire("passkey-verify", get);
    wire("passkey-login", get);
  });
})();
