// With a Basic login the browser reuses the password only below the folder it was asked for: a
// page opened at /task/<id> would send no credentials to /ui/... or /api/ws. One plain GET of
// /live (which the gate answers with a Basic challenge, as it does for any request without the
// pages' header) lets the browser extend the login to the whole site before the page fetches
// anything. It changes nothing on the server, so it needs no CSRF proof.
import { url } from "./config.js";

export function extendLogin() {
  return fetch(url("/live"), { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(() => undefined, () => undefined);
}
