// Runs the JS client through the cases of tests/test_client_parity.py and prints what it
// decided, one JSON line: [{allowed, decision, error, status, reason}, ...] in case order,
// or {construct: "TypeError", message} for a URL the client refused to be made with.
// Input on stdin: {"client": "<path of client/js/src/index.js>", "cases": [{url, timeout,
// allowRemote}]}; with a timeout of 100 ms or less only the Gate is made, nothing asked.
// A case without a url makes the Gate from the environment (TOLLGATE_URL).
// With "runs": [{url, command, env}] instead of cases, each is a gate.run with env (an
// object, added over process.env) and prints [{ran, exitCode, stdout} | {ran: false,
// error, reason}, ...]: error is the class name of what it was refused with.
// With "kubes": [{url, cluster}] each is a gate.kube GET of /api/v1/namespaces/apps/pods
// with that cluster ({server, token, caFile}), printed as {status} or {error: message}.
// With "waits": [{url, timeout, waitMs}] each is a waitForApproval('apr_1', waitMs) by a
// Gate of that timeout, printed as {status, reason, seconds}.

import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const input = JSON.parse(readFileSync(0, 'utf8'));
const { Gate } = await import(pathToFileURL(input.client).href);

const results = [];
for (const { url, command, env } of input.runs ?? []) {
  const gate = new Gate({ url });
  try {
    const { exitCode, stdout } = await gate.run(command, { env: { ...process.env, ...env } });
    results.push({ ran: true, exitCode, stdout });
  } catch (error) {
    results.push({ ran: false, error: error.constructor.name, reason: error.reason ?? error.message });
  } finally {
    gate.close();
  }
}
for (const { url, cluster } of input.kubes ?? []) {
  const gate = new Gate({ url });
  try {
    const answer = await gate.kube('GET', '/api/v1/namespaces/apps/pods', { cluster, timeout: 5000 });
    results.push({ status: answer.status });
  } catch (error) {
    results.push({ error: error.message });
  } finally {
    gate.close();
  }
}
for (const { url, timeout, waitMs } of input.waits ?? []) {
  const gate = new Gate({ url, timeout });
  const started = performance.now();
  const { status, reason } = await gate.waitForApproval('apr_1', waitMs);
  results.push({ status, reason, seconds: (performance.now() - started) / 1000 });
  gate.close();
}
for (const { url, timeout, allowRemote } of input.cases ?? []) {
  let gate;
  try {
    gate = new Gate({ url: url ?? undefined, timeout, allowRemote });
  } catch (error) {
    results.push({ construct: error.constructor.name, message: error.message });
    continue;
  }
  if (timeout <= 100) {
    // Only whether the Gate could be made is asked.
    gate.close();
    results.push({ construct: null });
    continue;
  }
  try {
    const decision = await gate.check({ action: 'file.read', path: '/app/data/x' });
    const { allowed, error, status, reason } = decision;
    results.push({ allowed, decision: decision.decision, error, status, reason });
  } finally {
    gate.close();
  }
}
process.stdout.write(`${JSON.stringify(results)}\n`);
