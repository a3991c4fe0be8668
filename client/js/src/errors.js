// The error of a refused action (CONTRACT section 5: `gate.require` throws DeniedError).

export class DeniedError extends Error {
  /**
   * The gate did not allow the action, or could not be asked (the client fails closed).
   * `decision` is the full answer; `reason` is what to show a person or hand back to the
   * model; `approval` is set when the action waits for a human's approval.
   * @param {import('../index.js').Decision} decision
   */
  constructor(decision) {
    super(decision.reason || `tollgate: ${decision.decision}`);
    this.name = 'DeniedError';
    this.decision = decision;
  }

  get reason() {
    return this.decision.reason;
  }

  get approval() {
    return this.decision.approval;
  }
}

/** Raised inside the transport; the gate turns it into a deny, never into an allow. */
export class TransportError extends Error {
  /** @param {string} kind @param {string} message */
  constructor(kind, message) {
    super(message);
    this.name = 'TransportError';
    this.kind = kind;
  }
}
