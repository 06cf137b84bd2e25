// The page's only way to the server: the JSON gateway over the gRPC API
// (`POST /api/<package.Service>/<Method>`). Every call names a gRPC method in full, so a test can
// list them and find each one in the API.

/** A failed call: the gRPC status, with its field violations and located diagnostics. */
export class ApiError extends Error {
  constructor(status) {
    super(status.message || 'request failed');
    this.code = status.code;
    this.codeName = status.codeName || 'UNKNOWN';
    this.fieldViolations = status.fieldViolations || [];
    this.diagnostics = status.diagnostics || [];
    // The server was not reached (as opposed to a status it answered).
    this.network = status.network === true;
  }

  /** The located text for a person: each diagnostic with its place and help. */
  located() {
    if (this.diagnostics.length) {
      return this.diagnostics.map((d) => {
        const where = [d.path, d.line ? `line ${d.line}` : ''].filter(Boolean).join(', ');
        return `${d.message}${where ? ` (${where})` : ''}${d.help ? `. ${d.help}` : ''}`;
      }).join('\n');
    }
    if (this.fieldViolations.length) return this.fieldViolations.map((v) => `${v.field}: ${v.description}`).join('\n');
    return this.message;
  }
}

const UNREACHABLE = { code: 14, codeName: 'UNAVAILABLE', message: 'the server cannot be reached', network: true };
const connection = new Set();
let inflight = 0;

/** Calls `f(connected)` whenever a call finds the server reachable or not. */
export function onConnection(f) {
  connection.add(f);
}

function reached(ok) {
  for (const f of connection) f(ok);
}

/** Calls still waiting for their answer. */
export function pending() {
  return inflight;
}

async function post(method, body, signal) {
  try {
    return await fetch(`/api/${method}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body || {}),
      signal,
    });
  } catch (e) {
    if (signal && signal.aborted) throw e;
    reached(false);
    throw new ApiError(UNREACHABLE);
  }
}

/** A unary call: `method` is "flowtime.v1.Service/Method"; resolves to the reply message. */
export async function call(method, body) {
  inflight++;
  try {
    // UNAVAILABLE answered by the server is a read cancelled by a concurrent write: retry.
    for (let attempt = 0; ; attempt++) {
      const res = await post(method, body);
      reached(true);
      const json = await res.json();
      if (res.ok) return json;
      if (json.code !== 14 || attempt >= 3) throw new ApiError(json);
    }
  } finally {
    inflight--;
  }
}

/**
 * A server-streaming call: `onMessage` gets each message; resolves when the stream ends,
 * rejects with an ApiError when it ends with a status or the connection drops.
 */
export async function stream(method, body, onMessage, signal) {
  const res = await post(method, body, signal);
  reached(true);
  if (!res.ok) throw new ApiError(await res.json());
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!line.trim()) continue;
        const m = JSON.parse(line);
        if (m.error) throw new ApiError(m.error);
        onMessage(m.result);
      }
    }
  } catch (e) {
    if (e instanceof ApiError || (signal && signal.aborted)) throw e;
    reached(false);
    throw new ApiError(UNREACHABLE);
  }
}
