// Gate.check / require / waitForApproval against the real daemon ($TOLLGATE_URL), and the
// fail-closed paths against real loopback servers that misbehave on purpose.

import assert from 'node:assert/strict';
import dns from 'node:dns';
import { after, describe, test } from 'node:test';

import { DEFAULT_URL, DeniedError, Gate, waitForApproval } from '../src/index.js';
import { answering, environment, freePort, httpAnswer, rawServer, scriptedApprovals } from './helpers.js';

const { url, files } = environment();
const report = `${files}/data/report.csv`;
const deployDelete = { method: 'DELETE', path: '/apis/apps/v1/namespaces/apps/deployments/web' };

const cleanups = [];
after(() => {
  for (const cleanup of cleanups) cleanup();
});
function track(thing) {
  cleanups.push(() => thing.close());
  return thing;
}

describe('decisions from the real daemon', () => {
  const gate = track(new Gate({ url }));

  test('allow and deny come back as decisions', async () => {
    const allowed = await gate.check({ action: 'file.read', path: report });
    assert.equal(allowed.allowed, true);
    assert.equal(allowed.decision, 'allow');
    assert.equal(allowed.rule, 'read-data');
    assert.equal(allowed.error, null);
    assert.equal(allowed.status, 200);
    assert.equal(allowed.decisionId.length, 26);
    const denied = await gate.check({ action: 'file.read', path: '/etc/shadow' });
    assert.deepEqual([denied.allowed, denied.decision, denied.rule], [false, 'deny', null]);
    assert.equal(denied.reason, 'no rule allows file.read of /etc/shadow');
  });

  test('require resolves to the allow and throws DeniedError with the reason', async () => {
    assert.equal((await gate.require({ action: 'file.read', path: report })).rule, 'read-data');
    await assert.rejects(gate.require({ action: 'process.exec', argv: ['rm', '-rf', '/'] }), (error) => {
      assert.ok(error instanceof DeniedError && error instanceof Error);
      assert.equal(error.name, 'DeniedError');
      assert.equal(error.decision.decision, 'deny');
      assert.match(error.reason, /no rule allows process\.exec/);
      assert.equal(error.message, error.reason);
      return true;
    });
  });

  test('require_approval is a deny that names the rule', async () => {
    const decision = await gate.check({ action: 'k8s.request', k8s: deployDelete });
    assert.deepEqual(
      [decision.allowed, decision.decision, decision.rule],
      [false, 'require_approval', 'deploy-delete'],
    );
    // The gate may add that an identical request is already waiting for approval.
    assert.ok(decision.reason.startsWith('deleting a deployment needs a human'), decision.reason);
    await assert.rejects(gate.require({ action: 'k8s.request', k8s: deployDelete }), DeniedError);
  });

  test('fields are sent as written (camelCase), null and undefined left out', async () => {
    const escaped = await gate.check({
      action: 'file.read',
      path: `${files}/data/escape`,
      realPath: `${files}/secret/key`,
    });
    assert.equal(escaped.allowed, false);
    assert.match(escaped.reason, /^realPath: /);
    assert.equal(
      (await gate.check({ action: 'process.exec', commandLine: 'echo a && printf b' })).allowed,
      true,
    );
    assert.equal(
      (await gate.check({ action: 'process.exec', commandLine: 'echo a; rm -rf /' })).allowed,
      false,
    );
    const preflight = await gate.check({
      action: 'file.read',
      path: report,
      dryRun: true,
      cwd: null,
      realPath: undefined,
    });
    assert.equal(preflight.allowed, true);
    assert.equal(preflight.raw.dryRun, true);
  });

  test("a field the gate does not know is a deny with the gate's message", async () => {
    const decision = await gate.check({ action: 'file.read', path: '/app/data/x', colour: 'blue' });
    assert.deepEqual([decision.allowed, decision.error, decision.status], [false, 'invalid_request', 400]);
    assert.match(decision.reason, /colour/);
  });

  test('values JSON cannot hold, and non-objects, are a deny, not an exception', async () => {
    const bigint = await gate.check({ action: 'file.read', path: '/x', context: { n: 1n } });
    assert.deepEqual([bigint.allowed, bigint.error], [false, 'bad_answer']);
    assert.match(bigint.reason, /could not be encoded/);
    assert.equal((await gate.check('file.read')).allowed, false);
    await assert.rejects(gate.require(null), DeniedError);
  });

  test('sequential checks reuse one keep-alive connection', async () => {
    const fresh = track(new Gate({ url }));
    for (let i = 0; i < 20; i += 1)
      assert.equal((await fresh.check({ action: 'file.read', path: report })).allowed, true);
    assert.equal(fresh.connectionsOpened, 1);
  });

  test('concurrent checks are all answered', async () => {
    const results = await Promise.all(
      Array.from({ length: 40 }, () => gate.check({ action: 'file.read', path: report })),
    );
    assert.ok(results.every((decision) => decision.allowed));
  });

  test('url comes from the option, then TOLLGATE_URL, then the default', async () => {
    const saved = process.env.TOLLGATE_URL;
    try {
      process.env.TOLLGATE_URL = `${url}/`;
      const fromEnv = track(new Gate());
      assert.equal(fromEnv.url, url);
      assert.equal((await fromEnv.check({ action: 'file.read', path: report })).allowed, true);
      delete process.env.TOLLGATE_URL;
      assert.equal(track(new Gate()).url, DEFAULT_URL);
      assert.equal(DEFAULT_URL, 'http://127.0.0.1:9800');
    } finally {
      process.env.TOLLGATE_URL = saved;
    }
    assert.throws(() => new Gate({ url: 'ftp://127.0.0.1:21' }), TypeError);
  });
});

describe('fail closed', () => {
  test('nobody listening is a deny', async () => {
    const decision = await track(new Gate({ url: `http://127.0.0.1:${await freePort()}` })).check({
      action: 'file.read',
      path: report,
    });
    assert.deepEqual([decision.allowed, decision.decision, decision.error], [false, 'deny', 'unreachable']);
    assert.match(decision.reason, /unreachable \(connection refused\)/);
  });

  test('a gate that never answers is a deny after the timeout', async () => {
    const silent = track(await rawServer(() => {}));
    const started = Date.now();
    const decision = await track(new Gate({ url: silent.url, timeout: 300 })).check({
      action: 'file.read',
      path: '/x',
    });
    assert.ok(Date.now() - started < 1500);
    assert.deepEqual([decision.allowed, decision.error], [false, 'timeout']);
    assert.match(decision.reason, /did not answer within 300 ms/);
  });

  for (const part of ['head', 'body']) {
    test(`an answer trickling in (${part}) is a deny at the timeout, not after it`, async () => {
      const answer = httpAnswer(200, '{"allowed": true, "decision": "allow", "reason": "slow"}');
      const headSize = answer.indexOf('\r\n\r\n') + 4;
      const trickle = track(
        await rawServer(async (socket, reader) => {
          await reader.next();
          let sent = part === 'head' ? 0 : headSize;
          if (sent) socket.write(answer.subarray(0, sent));
          while (sent < answer.length && !socket.destroyed) {
            socket.write(answer.subarray(sent, sent + 1));
            sent += 1;
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }),
      );
      const started = Date.now();
      const decision = await track(new Gate({ url: trickle.url, timeout: 500 })).check({
        action: 'file.read',
        path: '/x',
      });
      assert.ok(Date.now() - started < 1500, `a 500 ms timeout took ${Date.now() - started} ms`);
      assert.deepEqual([decision.allowed, decision.error], [false, 'timeout']);
    });
  }

  const cases = [
    [
      'not HTTP',
      async (socket, reader) => {
        await reader.next();
        socket.end('SSH-2.0-OpenSSH_9.6\r\n\r\n');
      },
      'bad_answer',
      /no valid HTTP answer/,
    ],
    [
      'closes silently',
      async (socket, reader) => {
        await reader.next();
        socket.end();
      },
      'bad_answer',
      /no valid HTTP answer/,
    ],
    [
      'no length (the body runs to the close, where a cut would look the same)',
      async (socket, reader) => {
        await reader.next();
        socket.end('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"allowed": true}');
      },
      'bad_answer',
      /without a length/,
    ],
    [
      'reset after part of the answer (on a fresh connection)',
      async (socket, reader) => {
        await reader.next();
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"allowed": true');
        await new Promise((resolve) => setTimeout(resolve, 100));
        socket.resetAndDestroy();
      },
      'bad_answer',
      /cut its answer short/,
    ],
    ['500', answering(500, '{"allowed": true}'), 'bad_answer', /HTTP 500/],
    [
      '503',
      answering(
        503,
        '{"allowed": false, "error": {"code": "unavailable", "message": "audit trail cannot be written"}}',
      ),
      'unavailable',
      /audit trail cannot be written/,
    ],
    [
      'allowed "true"',
      answering(200, '{"allowed": "true", "decision": "allow"}'),
      'bad_answer',
      /allowed="true"/,
    ],
    ['allowed 1', answering(200, '{"allowed": 1}'), 'bad_answer', /allowed=1/],
    ['allowed missing', answering(200, '{"decision": "allow"}'), 'bad_answer', /allowed=undefined/],
    ['not JSON', answering(200, 'allowed: true'), 'bad_answer', /not a JSON object/],
    ['JSON array', answering(200, '[true]'), 'bad_answer', /not a JSON object/],
    ['not UTF-8', answering(200, Buffer.from([0xff, 0xfe, 0x7b, 0x7d])), 'bad_answer', /not a JSON object/],
    [
      'a byte order mark before the JSON',
      answering(200, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"allowed": true}')])),
      'bad_answer',
      /not a JSON object/,
    ],
    ['huge', answering(200, ' '.repeat(1 << 20) + '{"allowed": true}'), 'bad_answer', /larger than/],
    [
      'a key twice (JSON.parse would keep the last, an allow)',
      answering(200, '{"allowed": false, "allowed": true}'),
      'bad_answer',
      /has the key "allowed" twice in one object/,
    ],
    [
      'a key twice, spelt once with an escape, in a nested object',
      answering(200, '{"allowed": true, "approval": {"id": "a", "\\u0069d": "b"}}'),
      'bad_answer',
      /has the key "id" twice in one object/,
    ],
  ];
  for (const [name, script, error, words] of cases) {
    test(`anything but a 200 with allowed: true is a deny: ${name}`, async () => {
      const server = track(await rawServer(script));
      const gate = track(new Gate({ url: server.url }));
      const decision = await gate.check({ action: 'file.read', path: '/app/data/x' });
      assert.deepEqual([decision.allowed, decision.decision, decision.error], [false, 'deny', error]);
      assert.match(decision.reason, words);
      await assert.rejects(gate.require({ action: 'file.read', path: '/app/data/x' }), DeniedError);
    });
  }

  test('a 101 (protocol switch) is a deny at once, never a hang', { timeout: 10_000 }, async () => {
    const allow = '{"allowed": true, "decision": "allow", "reason": "switched"}';
    const switching = track(
      await rawServer(async (socket, reader) => {
        await reader.next();
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n${allow}`);
      }),
    );
    const gate = track(new Gate({ url: switching.url, timeout: 2000 }));
    const started = Date.now();
    const decision = await gate.check({ action: 'file.read', path: '/x' });
    assert.ok(Date.now() - started < 1500, `took ${Date.now() - started} ms`);
    assert.deepEqual([decision.allowed, decision.error, decision.status], [false, 'bad_answer', 101]);
    assert.match(decision.reason, /HTTP 101, not 200/);
    await assert.rejects(gate.require({ action: 'file.read', path: '/x' }), DeniedError);
  });

  test('a deny never reads as allow, even if the decision field says so', async () => {
    const server = track(
      await rawServer(answering(200, '{"allowed": false, "decision": "allow", "reason": "odd"}')),
    );
    const decision = await track(new Gate({ url: server.url })).check({ action: 'file.read', path: '/x' });
    assert.deepEqual([decision.allowed, decision.decision, decision.reason], [false, 'deny', 'odd']);
  });

  test('a check the gate began to answer is never sent twice', async () => {
    // The gate had read the check (and decided, rate-limited and recorded it): sending it
    // again on a fresh connection would do all of that twice.
    const allow = JSON.stringify({ allowed: true, decision: 'allow', reason: 'ok' });
    let received = 0;
    const server = track(
      await rawServer(async (socket, reader, index) => {
        while ((await reader.next()) !== null) {
          received += 1;
          if (index === 0 && received === 2) {
            socket.write('HTTP/1.1 200 OK\r\nContent-Le');
            await new Promise((resolve) => setTimeout(resolve, 100));
            socket.resetAndDestroy();
            return;
          }
          socket.write(httpAnswer(200, allow));
        }
      }),
    );
    const gate = track(new Gate({ url: server.url }));
    assert.equal((await gate.check({ action: 'file.read', path: '/x' })).allowed, true);
    const decision = await gate.check({ action: 'file.read', path: '/x' });
    assert.deepEqual([decision.allowed, decision.error], [false, 'bad_answer']);
    assert.match(decision.reason, /cut its answer short/);
    assert.equal(received, 2, 'the check was sent again after the gate had answered part of it');
  });

  test('a dropped keep-alive connection is replaced, not denied', async () => {
    const allow = JSON.stringify({ allowed: true, decision: 'allow', reason: 'ok' });
    const server = track(
      await rawServer(async (socket, reader, index) => {
        await reader.next();
        socket.write(httpAnswer(200, allow));
        if (index === 0) {
          await reader.next(); // the second request arrives on the kept-alive connection ...
          socket.destroy(); // ... which is then reset without an answer
          return;
        }
        while ((await reader.next()) !== null) socket.write(httpAnswer(200, allow));
      }),
    );
    const gate = track(new Gate({ url: server.url }));
    assert.equal((await gate.check({ action: 'file.read', path: '/x' })).allowed, true);
    assert.equal((await gate.check({ action: 'file.read', path: '/x' })).allowed, true);
    assert.equal(gate.connectionsOpened, 2);
  });
});

describe('approvals', () => {
  test('a require_approval answer carries the approval; require does not wait by default', async () => {
    const server = track(await scriptedApprovals(['pending']));
    const gate = track(new Gate({ url: server.url }));
    const decision = await gate.check({ action: 'process.exec', argv: ['make', 'deploy'] });
    assert.deepEqual(
      { id: decision.approval.id, status: decision.approval.status, expiresAt: decision.approval.expiresAt },
      { id: 'apr_1', status: 'pending', expiresAt: '2030-01-01T00:00:00Z' },
    );
    await assert.rejects(
      gate.require({ action: 'process.exec', argv: ['make', 'deploy'] }),
      (error) => error.approval.id === 'apr_1',
    );
    assert.deepEqual(server.polls, []);
  });

  test('waitForApproval long-polls until decided', async () => {
    const server = track(await scriptedApprovals(['pending', 'pending', 'approved']));
    const approval = await track(new Gate({ url: server.url })).waitForApproval('apr_1', 10_000);
    assert.equal(approval.status, 'approved');
    assert.equal(server.polls.length, 3);
    assert.ok(['/v1/approvals/apr_1?wait=9', '/v1/approvals/apr_1?wait=10'].includes(server.polls[0]));
  });

  test('waitForApproval gives up with the last state seen', async () => {
    const server = track(await scriptedApprovals(['pending'], 300));
    const started = Date.now();
    const approval = await waitForApproval('apr_1', 1500, { url: server.url });
    assert.equal(approval.status, 'pending');
    const took = Date.now() - started;
    assert.ok(took > 1400 && took < 3000, `took ${took} ms`);
  });

  test('waiting for an unknown approval stops at once', async () => {
    const server = track(await scriptedApprovals(['pending']));
    const approval = await track(new Gate({ url: server.url })).waitForApproval('apr_nope', 30_000);
    assert.equal(approval.status, 'unknown');
    assert.match(approval.reason, /knows no approval/);
    assert.equal(server.polls.length, 1);
  });

  test('waiting on an unreachable gate is unknown, not approved', async () => {
    const approval = await track(new Gate({ url: `http://127.0.0.1:${await freePort()}` })).waitForApproval(
      'apr_1',
      1000,
    );
    assert.equal(approval.status, 'unknown');
    assert.match(approval.reason, /unreachable/);
  });

  test('require waits for the approval and re-sends the identical check', async () => {
    const server = track(await scriptedApprovals(['pending', 'approved']));
    const gate = track(new Gate({ url: server.url, approvalTimeout: 10_000 }));
    const decision = await gate.require({
      action: 'process.exec',
      argv: ['make', 'deploy'],
      context: { task: 'ship' },
    });
    assert.equal(decision.allowed, true);
    const [first, second] = server.checks;
    assert.deepEqual(second, { ...first, approval: 'apr_1' });
  });

  for (const [state, words] of [
    ['denied', 'is denied (not today)'],
    ['expired', 'is expired'],
  ]) {
    test(`require throws when the approval ${state}`, async () => {
      const server = track(await scriptedApprovals([state]));
      const gate = track(new Gate({ url: server.url, approvalTimeout: 10_000 }));
      await assert.rejects(gate.require({ action: 'process.exec', argv: ['make', 'deploy'] }), (error) => {
        assert.equal(error.reason, `needs a human; approval apr_1 ${words}`);
        return true;
      });
      assert.equal(server.checks.length, 1);
    });
  }
});

describe('localhost is the gate address 127.0.0.1, never looked up', () => {
  // In a pod the kubelet's /etc/hosts lists `::1 localhost` first, and a process listening
  // on [::1] at the gate's port took every check (review 2026-12-06); as in the Python
  // client.
  const allow = '{"allowed": true, "decision": "allow", "reason": "ok"}';

  for (const addresses of [['192.0.2.1'], ['::1', '127.0.0.1'], ['::ffff:127.0.0.1'], ['127.0.0.2']]) {
    test(`with a resolver answering ${addresses.join(', ')}`, async (t) => {
      const server = track(await rawServer(answering(200, allow))); // 127.0.0.1 only
      const asked = [];
      const real = dns.lookup;
      t.mock.method(dns, 'lookup', (hostname, options, callback) => {
        if (typeof options === 'function') [options, callback] = [{}, options];
        const name = hostname.toLowerCase().replace(/\.$/, '');
        if (name !== 'localhost') return real(hostname, options, callback);
        asked.push(hostname);
        const found = addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
        if (options.all) callback(null, found);
        else callback(null, found[0].address, found[0].family);
      });
      for (const host of ['localhost', 'LOCALHOST', 'localhost.']) {
        const gate = track(new Gate({ url: `http://${host}:${new URL(server.url).port}`, timeout: 2000 }));
        for (let i = 0; i < 2; i += 1) {
          const decision = await gate.check({ action: 'file.read', path: '/x' });
          assert.deepEqual([decision.allowed, decision.error], [true, null], decision.reason);
        }
      }
      assert.deepEqual(asked, []);
      assert.equal(server.accepted, 3); // one kept-alive connection per Gate
    });
  }
});

describe('timeouts are validated when the Gate is made', () => {
  const invalid = [0, -1, Number.NaN, Infinity, -Infinity, null, '2000', true, 2 ** 31];
  for (const timeout of invalid) {
    test(`timeout ${String(timeout)} (${typeof timeout}) is a RangeError`, () => {
      assert.throws(() => new Gate({ url, timeout }), RangeError);
    });
  }
  for (const approvalTimeout of [-1, Number.NaN, Infinity, null, '10']) {
    test(`approvalTimeout ${String(approvalTimeout)} is a RangeError`, () => {
      assert.throws(() => new Gate({ url, approvalTimeout }), RangeError);
    });
  }
  test('a finite positive timeout, and approvalTimeout 0, are fine', () => {
    for (const timeout of [1, 0.5, 2000, 2 ** 31 - 1]) track(new Gate({ url, timeout, approvalTimeout: 0 }));
    assert.equal(track(new Gate({ url })).timeout, 2000);
  });
  test('waitForApproval refuses a timeout that is not a finite number >= 0', async () => {
    const gate = track(new Gate({ url: `http://127.0.0.1:${await freePort()}` }));
    for (const timeoutMs of [Number.NaN, -1, Infinity, null]) {
      await assert.rejects(gate.waitForApproval('apr_1', timeoutMs), RangeError);
    }
  });
});
