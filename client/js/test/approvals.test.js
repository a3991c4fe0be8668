// Approvals through the real daemon: the agent waits, a human (here: this test, holding
// the approver's Ed25519 key) signs a decision, and the identical check goes through once.

import assert from 'node:assert/strict';
import { createPrivateKey, sign } from 'node:crypto';
import { test } from 'node:test';

import { DeniedError, Gate } from '../src/index.js';
import { environment, jsonRequest } from './helpers.js';

const { url, approverKey } = environment();
const key = createPrivateKey(approverKey);
const deploy = { action: 'process.exec', argv: ['make', 'deploy'] };

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Act as the approver: wait for the pending approval, sign the decision, send it. */
async function decideWhenPending(verdict) {
  let pending = [];
  for (let tries = 0; pending.length === 0 && tries < 200; tries += 1) {
    const { approvals } = (await jsonRequest('GET', `${url}/v1/approvals?status=pending`)).body;
    // Other test files leave other actions pending (a Kubernetes delete).
    pending = approvals.filter((view) => view.action === 'process.exec');
    if (pending.length === 0) await sleep(50);
  }
  assert.equal(pending.length, 1);
  const [view] = pending;
  // Canonical JSON of these four string fields: keys sorted, no whitespace.
  const message = JSON.stringify({
    approval: view.id,
    approver: 'alice',
    decision: verdict,
    requestHash: view.requestHash,
  });
  const signature = sign(null, Buffer.from(message, 'utf8'), key).toString('base64');
  const answer = await jsonRequest('POST', `${url}/v1/approvals/${view.id}`, {
    decision: verdict,
    approver: 'alice',
    reason: 'checked the diff',
    signature,
  });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return view.id;
}

// One after the other: each expects to be the only pending approval.
test('require waits for a signed approval, and the approval is redeemed once', async () => {
  const gate = new Gate({ url, approvalTimeout: 20_000 });
  try {
    const [decision, approvalId] = await Promise.all([gate.require(deploy), decideWhenPending('approve')]);
    assert.equal(decision.allowed, true);
    const again = await gate.check({ ...deploy, approval: approvalId });
    assert.equal(again.allowed, false);
  } finally {
    gate.close();
  }
});

test('require throws when the human denies, with their reason', async () => {
  const gate = new Gate({ url, approvalTimeout: 20_000 });
  try {
    const [outcome, approvalId] = await Promise.all([
      gate.require(deploy).then(
        () => assert.fail('allowed without approval'),
        (error) => error,
      ),
      decideWhenPending('deny'),
    ]);
    assert.ok(outcome instanceof DeniedError);
    assert.equal(outcome.approval.status, 'denied');
    assert.ok(outcome.reason.includes(`approval ${approvalId} is denied (checked the diff)`), outcome.reason);
  } finally {
    gate.close();
  }
});

test('waitForApproval follows a real approval', async () => {
  const gate = new Gate({ url });
  try {
    const first = await gate.check(deploy);
    assert.equal(first.decision, 'require_approval');
    assert.equal(first.approval.status, 'pending');
    assert.ok(first.approval.expiresAt);
    const [approval] = await Promise.all([
      gate.waitForApproval(first.approval.id, 20_000),
      decideWhenPending('approve'),
    ]);
    assert.equal(approval.status, 'approved');
    assert.equal((await gate.check({ ...deploy, approval: approval.id })).allowed, true);
  } finally {
    gate.close();
  }
});
