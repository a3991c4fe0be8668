// Gate: ask Tollgate before acting (CONTRACT section 5, JavaScript client).
//
// `check` never rejects: an unreachable gate, a timeout, a non-200 answer, malformed JSON
// or an `allowed` that is not literally true all resolve to a deny whose `reason` says
// why. `require` throws DeniedError instead. The guarded helpers openFile, run, fetch and
// kube check first and act only when allowed.

import {
  BAD_ANSWER,
  failedClosed,
  readApproval,
  readDecision,
  readJsonObject,
  unknownApproval,
} from './answers.js';
import { runChecked } from './commands.js';
import { DeniedError, TransportError } from './errors.js';
import { fetchChecked } from './fetch.js';
import { openChecked } from './files.js';
import { kubeChecked } from './kube.js';
import { validTimeout } from './timeouts.js';
import { Transport } from './transport.js';

// Still importable from here, where they were first defined.
export { MAX_TIMEOUT_MS, validTimeout } from './timeouts.js';

export const DEFAULT_URL = 'http://127.0.0.1:9800';
const CHECK_PATH = '/v1/check';
// The gate holds a long poll for at most 60 s (CONTRACT 2.4).
const MAX_APPROVAL_WAIT_S = 60;
// Pause between polls when the gate answered at once (an error, a restart), so that
// waiting never spins.
const POLL_PAUSE_MS = 500;
// How long past the wait's own timeout a poll may still be answered: each poll's request
// is bounded by what is left of the wait, plus this, not by the poll plus the Gate's
// timeout (which ran past the wait by up to that timeout), as in the Python client.
const POLL_GRACE_MS = 500;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The JSON body of one check: fields set to undefined or null are left out. */
export function encodeCheck(request) {
  if (request === null || typeof request !== 'object' || Array.isArray(request)) {
    throw new TypeError('a check is an object such as {action: "file.read", path: "/x"}');
  }
  const body = {};
  for (const [name, value] of Object.entries(request)) {
    if (value !== undefined && value !== null) body[name] = value;
  }
  return Buffer.from(JSON.stringify(body), 'utf8');
}

export class Gate {
  /**
   * @param {{url?: string, timeout?: number, approvalTimeout?: number, allowRemote?: boolean}} [options]
   * `url` defaults to $TOLLGATE_URL, then http://127.0.0.1:9800; it must name the gate's
   * loopback address, 127.0.0.1 (also as `localhost`, never looked up) or [::1]
   * (TypeError otherwise) unless `allowRemote` is true. `timeout` (ms, default
   * 2000) bounds each check. With `approvalTimeout` (ms) > 0, `require` and the guarded
   * helpers wait that long for a human to decide an action that needs approval, then
   * re-send the identical check with the approval id. A timeout that is not a finite
   * number (ms) above 0 (approvalTimeout: 0 or above) and at most MAX_TIMEOUT_MS is a
   * RangeError.
   */
  constructor({ url, timeout = 2000, approvalTimeout = 0, allowRemote = false } = {}) {
    this.url = (url || process.env.TOLLGATE_URL || DEFAULT_URL).replace(/\/+$/, '');
    this.timeout = validTimeout('timeout', timeout);
    this.approvalTimeout = validTimeout('approvalTimeout', approvalTimeout, true);
    this.transport = new Transport(this.url, { allowRemote: allowRemote === true });
  }

  /** TCP connections opened so far; stays at 1 for sequential checks (keep-alive). */
  get connectionsOpened() {
    return this.transport.connectionsOpened;
  }

  /** Close the pooled connections (a later check opens a new one). */
  close() {
    this.transport.close();
  }

  /** Ask whether an action may happen. One round trip; never rejects. */
  async check(request) {
    let body;
    try {
      body = encodeCheck(request);
    } catch (error) {
      return failedClosed(`the check could not be encoded as JSON: ${error.message}`, BAD_ANSWER);
    }
    try {
      const { status, body: answer } = await this.transport.request('POST', CHECK_PATH, body, this.timeout);
      return readDecision(status, answer);
    } catch (error) {
      if (error instanceof TransportError) return failedClosed(error.message, error.kind);
      return failedClosed(`tollgate could not be asked: ${error?.message ?? error}`, BAD_ANSWER);
    }
  }

  /** Like check, but throws DeniedError unless the action is allowed. */
  async require(request) {
    let decision = await this.check(request);
    if (
      !decision.allowed &&
      decision.decision === 'require_approval' &&
      decision.approval !== null &&
      this.approvalTimeout > 0 &&
      !request?.approval &&
      !request?.dryRun
    ) {
      decision = await this.afterApproval(request, decision);
    }
    if (!decision.allowed) throw new DeniedError(decision);
    return decision;
  }

  async afterApproval(request, first) {
    const approval = await this.waitForApproval(first.approval.id, this.approvalTimeout);
    if (approval.status !== 'approved') {
      return Object.freeze({
        ...first,
        reason: unapprovedReason(first, approval, this.approvalTimeout),
        approval,
      });
    }
    return this.check({ ...request, approval: approval.id });
  }

  /**
   * Wait until the approval leaves `pending` or `timeoutMs` passes (long-polls
   * GET /v1/approvals/{id}?wait=N). Resolves to the last state seen: `pending` if nobody
   * decided in time, `unknown` (with a reason) if the gate could not be asked or knows no
   * such approval. Never rejects for the gate's sake (a gate restart during the wait is
   * ridden out); a `timeoutMs` that is not a finite number >= 0 rejects with RangeError.
   */
  async waitForApproval(approvalId, timeoutMs = 300_000) {
    validTimeout('waitForApproval timeout', timeoutMs, true);
    const deadline = Date.now() + timeoutMs;
    let lastKnown = null;
    for (;;) {
      const wait = Math.floor(
        Math.min(MAX_APPROVAL_WAIT_S * 1000, Math.max(deadline - Date.now(), 0)) / 1000,
      );
      const askedAt = Date.now();
      const limit = Math.min(wait * 1000 + this.timeout, Math.max(deadline - askedAt, 0) + POLL_GRACE_MS);
      const { approval, final } = await this.pollApproval(approvalId, wait, limit);
      if (final || (approval.status !== 'pending' && approval.status !== 'unknown')) return approval;
      if (approval.status === 'pending') lastKnown = approval;
      const remaining = deadline - Date.now();
      if (remaining <= 0) return lastKnown ?? approval;
      if (Date.now() - askedAt < Math.max(wait * 1000, POLL_PAUSE_MS)) {
        await sleep(Math.min(POLL_PAUSE_MS, remaining));
      }
    }
  }

  /**
   * One poll of `wait` s, answered within `limitMs`: {approval, final}; `final` says that
   * asking again cannot help.
   */
  async pollApproval(approvalId, wait, limitMs) {
    const path = `/v1/approvals/${encodeURIComponent(approvalId)}?wait=${wait}`;
    let status;
    let body;
    try {
      ({ status, body } = await this.transport.request('GET', path, null, limitMs));
    } catch (error) {
      return { approval: unknownApproval(approvalId, error.message), final: false };
    }
    if (status === 404)
      return {
        approval: unknownApproval(approvalId, `tollgate knows no approval ${JSON.stringify(approvalId)}`),
        final: true,
      };
    if (status !== 200)
      return { approval: unknownApproval(approvalId, `tollgate answered HTTP ${status}`), final: false };
    const approval = readApproval(readJsonObject(body));
    if (approval === null || approval.id !== approvalId) {
      return {
        approval: unknownApproval(approvalId, "tollgate's answer is not this approval"),
        final: false,
      };
    }
    return { approval: approval, final: false };
  }

  openFile(path, flags, options) {
    return openChecked(this, path, flags, options);
  }

  run(command, options) {
    return runChecked(this, command, options);
  }

  fetch(url, init) {
    return fetchChecked(this, url, init);
  }

  kube(method, path, options) {
    return kubeChecked(this, method, path, options);
  }
}

function unapprovedReason(first, approval, waitedMs) {
  let outcome;
  if (approval.status === 'pending') outcome = `was not decided within ${waitedMs / 1000} s`;
  else if (approval.status === 'unknown') outcome = `could not be followed: ${approval.reason}`;
  else {
    outcome = `is ${approval.status}`;
    if (typeof approval.raw.reason === 'string' && approval.raw.reason)
      outcome += ` (${approval.raw.reason})`;
  }
  return `${first.reason}; approval ${approval.id} ${outcome}`;
}

/** `new Gate({url}).waitForApproval(id, timeoutMs)` for a one-off wait. */
export async function waitForApproval(approvalId, timeoutMs = 300_000, { url, allowRemote } = {}) {
  const gate = new Gate({ url, allowRemote });
  try {
    return await gate.waitForApproval(approvalId, timeoutMs);
  } finally {
    gate.close();
  }
}
