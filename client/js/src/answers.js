// The gate's answers as JS values, read fail-closed (CONTRACT sections 2.1, 2.4, 5).
//
// Only a 200 whose JSON object has `"allowed": true` (the JSON literal, not "true" or 1)
// is an allow; everything else is a deny whose `reason` says what went wrong and whose
// `error` names the kind of failure.

// Error kinds the client itself reports (the gate's own codes, such as "invalid_request"
// or "unavailable", are passed through as they are).
export const UNREACHABLE = 'unreachable';
export const TIMEOUT = 'timeout';
export const BAD_ANSWER = 'bad_answer';
export const CHANGED = 'changed';
export const NOT_FOUND = 'not_found';

const APPROVAL_STATES = new Set(['pending', 'approved', 'denied', 'expired', 'redeemed']);

// The gate's answers nest two levels deep and hold no long numbers. Past these limits
// the two clients' parsers part ways (Python's json stops near 1000 levels and refuses an
// integer of more than 4300 digits; JSON.parse takes both), so both clients refuse such an
// answer before parsing it. The Python client has the same limits.
export const MAX_JSON_DEPTH = 32;
export const MAX_NUMBER_DIGITS = 4300;

const text = (value) => (typeof value === 'string' ? value : null);

/** A deny made by the client because it could not get a trustworthy answer. */
export function failedClosed(reason, error, status = null) {
  return Object.freeze({
    allowed: false,
    decision: 'deny',
    reason,
    rule: null,
    decisionId: null,
    approval: null,
    risk: null,
    mode: null,
    error,
    status,
    raw: {},
  });
}

/** An approval the client could not learn the state of. */
export function unknownApproval(id, reason) {
  return Object.freeze({ id, status: 'unknown', expiresAt: null, reason, raw: {} });
}

/**
 * The body as a JSON object, or null when it is anything else. A byte order mark is kept
 * (ignoreBOM), so JSON.parse refuses it as Python's json does: JSON has no BOM (RFC 8259).
 */
export function readJsonObject(body) {
  return jsonObject(body).value;
}

/** {value: the body as a JSON object, problem: ''} or {value: null, problem: what it is instead}. */
function jsonObject(body) {
  const notObject = { value: null, problem: 'is not a JSON object' };
  let text;
  let value;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body);
  } catch {
    return notObject;
  }
  const problem = shapeProblem(text);
  if (problem !== null) return { value: null, problem };
  try {
    value = JSON.parse(text);
  } catch {
    return notObject;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return notObject;
  // JSON.parse keeps the last of two equal keys: {"allowed": false, "allowed": true}
  // would read as an allow. Such an answer is not the gate's (as in the Python client).
  const repeated = repeatedKey(text);
  if (repeated !== null) {
    return { value: null, problem: `has the key ${JSON.stringify(repeated)} twice in one object` };
  }
  return { value, problem: '' };
}

/**
 * What puts `text` past MAX_JSON_DEPTH or MAX_NUMBER_DIGITS, or null: one pass before
 * JSON.parse, as in the Python client. Brackets and digits in strings are text; at a
 * string left open the scan stops (JSON.parse refuses it).
 */
function shapeProblem(text) {
  let depth = 0;
  let digits = 0;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (c >= '0' && c <= '9') {
      digits += 1;
      if (digits > MAX_NUMBER_DIGITS) return `has a number of more than ${MAX_NUMBER_DIGITS} digits`;
      continue;
    }
    digits = 0;
    if (c === '"') {
      let end = i + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      if (end >= text.length) return null;
      i = end;
    } else if (c === '[' || c === '{') {
      depth += 1;
      if (depth > MAX_JSON_DEPTH) return `nests deeper than ${MAX_JSON_DEPTH} levels`;
    } else if (c === ']' || c === '}') {
      depth -= 1;
    }
  }
  return null;
}

/** The first key an object in `text` (valid JSON) has twice, compared unescaped, or null. */
function repeatedKey(text) {
  const open = []; // per open object or array: {keys: Set|null, keyNext: boolean}
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (c === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      const top = open[open.length - 1];
      if (top !== undefined && top.keys !== null && top.keyNext) {
        const key = JSON.parse(text.slice(i, end + 1));
        if (top.keys.has(key)) return key;
        top.keys.add(key);
        top.keyNext = false;
      }
      i = end;
    } else if (c === '{') {
      open.push({ keys: new Set(), keyNext: true });
    } else if (c === '[') {
      open.push({ keys: null, keyNext: false });
    } else if (c === '}' || c === ']') {
      open.pop();
    } else if (c === ',') {
      const top = open[open.length - 1];
      if (top.keys !== null) top.keyNext = true;
    }
  }
  return null;
}

/** An approval object, or null unless it has a string `id` and a known `status`. */
export function readApproval(value) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  if (typeof value.id !== 'string' || !APPROVAL_STATES.has(value.status)) return null;
  return Object.freeze({
    id: value.id,
    status: value.status,
    expiresAt: text(value.expiresAt),
    reason: '',
    raw: value,
  });
}

function errorReason(status, payload) {
  const error = payload?.error;
  if (error !== null && typeof error === 'object' && typeof error.code === 'string') {
    const message = text(error.message) || 'no message';
    return [`tollgate refused the check (HTTP ${status} ${error.code}): ${message}`, error.code];
  }
  return [`tollgate answered HTTP ${status}, not 200`, BAD_ANSWER];
}

/** Read a /v1/check answer. Never throws; anything unexpected is a deny. */
export function readDecision(status, body) {
  const { value: payload, problem } = jsonObject(body);
  if (status !== 200) {
    const [reason, error] = errorReason(status, payload);
    return failedClosed(reason, error, status);
  }
  if (payload === null) return failedClosed(`tollgate's answer ${problem}`, BAD_ANSWER, status);
  const { allowed } = payload;
  if (typeof allowed !== 'boolean') {
    return failedClosed(
      `tollgate's answer has allowed=${JSON.stringify(allowed)}, not the JSON literal true or false`,
      BAD_ANSWER,
      status,
    );
  }
  let decision = text(payload.decision) || '';
  // "decision" must never read as an allow when "allowed" says no.
  if (!allowed && decision !== 'deny' && decision !== 'require_approval') decision = 'deny';
  return Object.freeze({
    allowed,
    decision,
    reason: text(payload.reason) || '',
    rule: text(payload.rule),
    decisionId: text(payload.decisionId),
    approval: readApproval(payload.approval),
    risk: text(payload.risk),
    mode: text(payload.mode),
    error: null,
    status,
    raw: payload,
  });
}
