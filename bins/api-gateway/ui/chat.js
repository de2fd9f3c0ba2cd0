// One chat WebSocket (/ws/chat) with reconnection.
//
// open(init) connects and sends `init` (agent, course, session to resume);
// events go to onEvent. When the socket drops (network loss, a restarted
// chat-service, the server's idle timeout) it reconnects with backoff and
// resumes the same session; onStatus reports "connecting" | "open" |
// "reconnecting" (with the next attempt's delay) | "closed".
import { accessToken, refresh } from "./api.js";

const PING_MS = 25000;

export class ChatConnection {
  constructor({ onEvent, onStatus }) {
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.ws = null;
    this.init = null;
    this.sessionId = null;
    this.closed = false;
    this.attempt = 0;
    this.timer = null;
    this.pinger = null;
    this.ready = null; // resolves on `ready`
    this.streaming = false;
    this.wake = () => this.retryNow();
  }

  /** Connects and opens (or resumes) a session; resolves on `ready`. */
  open(init) {
    this.init = { type: "init", ...init };
    this.sessionId = init.session_id || null;
    this.closed = false;
    window.addEventListener("online", this.wake);
    return this.connect();
  }

  connect() {
    clearTimeout(this.timer);
    if (!this.waiting) {
      // One promise per wait for `ready`, kept across reconnect attempts.
      this.waiting = true;
      this.ready = new Promise((resolve, reject) => {
        this.readyResolve = (v) => { this.waiting = false; resolve(v); };
        this.readyReject = (e) => { this.waiting = false; reject(e); };
      });
      this.ready.catch(() => {});
    }
    this.onStatus(this.attempt ? "reconnecting" : "connecting");
    this.dial();
    return this.ready;
  }

  async dial() {
    let token;
    try {
      token = await accessToken();
    } catch (e) {
      if (e.status === 401) {
        this.close();
        this.readyReject(e);
        return;
      }
      return this.scheduleRetry();
    }
    if (this.closed) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/chat?token=${encodeURIComponent(token)}`);
    this.ws = ws;
    let opened = false;
    ws.addEventListener("open", () => {
      opened = true;
      const init = { ...this.init };
      if (this.sessionId) init.session_id = this.sessionId;
      ws.send(JSON.stringify(init));
    });
    ws.addEventListener("message", (m) => {
      let ev;
      try {
        ev = JSON.parse(m.data);
      } catch {
        return;
      }
      if (ev.type === "ready") {
        this.sessionId = ev.session_id;
        this.attempt = 0;
        clearInterval(this.pinger);
        this.pinger = setInterval(() => this.send({ type: "ping" }), PING_MS);
        this.onStatus("open");
        this.readyResolve(ev);
      }
      if (ev.type === "pong") return;
      if (ev.type === "done" || ev.type === "error") this.streaming = false;
      this.onEvent(ev);
    });
    ws.addEventListener("close", (e) => {
      clearInterval(this.pinger);
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.streaming) {
        this.streaming = false;
        this.onEvent({ type: "error", code: "connection_lost", message: "The connection dropped while the answer was streaming." });
      }
      if (this.closed) return;
      if (e.code === 1008 || e.code === 4401) {
        // Refused credentials: refresh once, then try again.
        refresh().then(() => this.scheduleRetry(), () => {});
        return;
      }
      if (!opened && this.attempt === 1) {
        // The upgrade itself failed: maybe an expired token; refresh quietly.
        refresh(token).catch(() => {});
      }
      this.scheduleRetry();
    });
  }

  scheduleRetry() {
    if (this.closed) return;
    this.attempt += 1;
    const delay = Math.min(10000, 500 * 2 ** Math.min(this.attempt - 1, 5));
    this.onStatus("reconnecting", delay);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Reconnects now (the browser came back online). */
  retryNow() {
    if (!this.closed && !this.ws) this.connect();
  }

  /** Whether a frame can be sent now. */
  isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends a client frame; false when the socket is not open. */
  send(frame) {
    if (!this.isOpen()) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Asks a question (the answer streams to onEvent). */
  ask(content) {
    const ok = this.send({ type: "chat_message", content });
    if (ok) this.streaming = true;
    return ok;
  }

  /** Stops the answer being generated. */
  cancel() {
    return this.send({ type: "cancel" });
  }

  /** Closes for good. */
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    window.removeEventListener("online", this.wake);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
    this.onStatus("closed");
  }
}
