// The HTTP API: sign-in state, bearer tokens with refresh, JSON errors.
//
// Tokens live in localStorage (one sign-in per browser, shared by tabs, kept
// across reloads). The access token is refreshed shortly before it expires
// and once more when the server answers 401; refresh tokens are single use,
// so one refresh runs at a time and a tab that finds a newer pair in storage
// (another tab refreshed) uses that one instead.

const STORE = "confab.auth";

/** An API failure: HTTP status (0: no answer), stable `code`, human `message`. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

const listeners = new Set();
/** Calls `fn(message)` when the user is signed out (refresh refused, logout). */
export function onSignedOut(fn) {
  listeners.add(fn);
}

function load() {
  try {
    const v = JSON.parse(localStorage.getItem(STORE) || "null");
    return v && v.access && v.refresh ? v : null;
  } catch {
    return null;
  }
}

function store(auth) {
  if (auth) localStorage.setItem(STORE, JSON.stringify(auth));
  else localStorage.removeItem(STORE);
}

/** The signed-in user (as last fetched), or null. */
export function currentUser() {
  return load()?.user ?? null;
}

/** Remembers a fresh user object. */
export function rememberUser(user) {
  const a = load();
  if (a) store({ ...a, user });
}

function expiresSoon(token, marginMs = 20000) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const { exp } = JSON.parse(atob(part));
    return typeof exp === "number" && exp * 1000 - Date.now() < marginMs;
  } catch {
    return false; // an API key or an opaque token: let the server decide
  }
}

async function errorOf(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch {
    /* not JSON */
  }
  const retry = Number.parseInt(resp.headers.get("retry-after") || "", 10);
  return new ApiError(
    resp.status,
    body?.error || `http_${resp.status}`,
    body?.message || resp.statusText || `request failed (${resp.status})`,
    Number.isFinite(retry) ? retry : null,
  );
}

async function post(path, body) {
  let resp;
  try {
    resp = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "Cannot reach confab. Check your connection and try again.");
  }
  if (!resp.ok) throw await errorOf(resp);
  return resp.status === 204 ? null : resp.json();
}

function signedIn(answer) {
  store({ access: answer.tokens.access_token, refresh: answer.tokens.refresh_token, user: answer.user });
  return answer.user;
}

/** POST /api/auth/login; resolves to the user. */
export async function login(email, password) {
  return signedIn(await post("/api/auth/login", { email, password }));
}

/** POST /api/auth/register; resolves to the user. */
export async function register(email, password, displayName) {
  const body = { email, password };
  if (displayName) body.display_name = displayName;
  return signedIn(await post("/api/auth/register", body));
}

/** Signs out here (the refresh token is revoked on the server, best effort). */
export async function logout(message = null) {
  const a = load();
  store(null);
  if (a) {
    try {
      await fetch("/api/auth/logout", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: a.refresh }),
      });
    } catch {
      /* offline: the token expires on its own */
    }
  }
  for (const fn of listeners) fn(message);
}

let refreshing = null;

/** Exchanges the refresh token for a new pair (one at a time). */
export function refresh(spent = null) {
  if (!refreshing) {
    refreshing = (async () => {
      const a = load();
      if (!a) throw new ApiError(401, "unauthorized", "Please sign in.");
      // Another tab (or an earlier call) already refreshed: use its pair.
      if (spent && a.access !== spent && !expiresSoon(a.access)) return a.access;
      let resp;
      try {
        resp = await fetch("/api/auth/refresh", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ refresh_token: a.refresh }),
        });
      } catch {
        throw new ApiError(0, "network", "Cannot reach confab. Check your connection and try again.");
      }
      if (!resp.ok) {
        const err = await errorOf(resp);
        if (resp.status === 401 || resp.status === 400) {
          const now = load();
          if (now && now.refresh !== a.refresh) return now.access; // a racing tab won
          store(null);
          for (const fn of listeners) fn("Your session has expired. Please sign in again.");
        }
        throw err;
      }
      const t = await resp.json();
      store({ ...a, access: t.access_token, refresh: t.refresh_token });
      return t.access_token;
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** A valid access token (refreshed first when it is about to expire). */
export async function accessToken() {
  const a = load();
  if (!a) throw new ApiError(401, "unauthorized", "Please sign in.");
  if (expiresSoon(a.access)) return refresh(a.access);
  return a.access;
}

/**
 * Calls the API as the signed-in user. `body`: an object (sent as JSON), a
 * string/Blob (sent as is) or undefined. `raw: true` resolves to the Response.
 */
export async function api(method, path, body, { raw = false, retried = false, type = null, signal = undefined } = {}) {
  const token = await accessToken();
  const headers = { authorization: `Bearer ${token}` };
  let payload;
  if (body !== undefined && body !== null) {
    if (body instanceof FormData) {
      payload = body; // the browser sets the multipart content type
    } else if (typeof body === "string" || body instanceof Blob) {
      payload = body;
      headers["content-type"] = type || "application/json";
    } else {
      payload = JSON.stringify(body);
      headers["content-type"] = "application/json";
    }
  }
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload, signal });
  } catch (e) {
    if (e?.name === "AbortError") throw e;
    throw new ApiError(0, "network", "Cannot reach confab. Check your connection and try again.");
  }
  if (resp.status === 401 && !retried) {
    const err = await errorOf(resp);
    // A wrong password (e.g. creating an API key) is not an expired token.
    if (err.code === "invalid_credentials") throw err;
    await refresh(token);
    return api(method, path, body, { raw, retried: true, type, signal });
  }
  if (!resp.ok) throw await errorOf(resp);
  if (raw) return resp;
  if (resp.status === 204) return null;
  return resp.json();
}

/** A message for an error, fit for the screen. */
export function explain(err) {
  if (!(err instanceof ApiError)) return "Something went wrong. Please try again.";
  switch (err.code) {
    case "rate_limited":
      return err.retryAfter
        ? `Too many attempts. Try again in ${err.retryAfter} second${err.retryAfter === 1 ? "" : "s"}.`
        : "Too many attempts. Wait a moment and try again.";
    case "unavailable":
    case "bad_gateway":
    case "gateway_timeout":
      return "The chat service is unavailable right now. It will be retried; your work is kept.";
    default:
      return err.message;
  }
}
