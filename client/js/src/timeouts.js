// The one rule for every timeout the client takes (the Gate's and its guarded helpers'),
// in its own module so that the helpers (kube, run) can use it without importing gate.js,
// which imports them.

// The longest timer Node can set (2^31 - 1 ms, about 24.8 days); a longer one fires at once.
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * `value` if it is a finite number of milliseconds, above zero (or zero when
 * `zeroAllowed`) and at most MAX_TIMEOUT_MS; RangeError otherwise. A NaN, negative or
 * infinite timeout would make every check time out at once, or wait forever; the Python
 * client applies the same rule, in seconds (ValueError).
 */
export function validTimeout(name, value, zeroAllowed = false) {
  const valid =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (zeroAllowed ? value >= 0 : value > 0) &&
    value <= MAX_TIMEOUT_MS;
  if (!valid) {
    const least = zeroAllowed ? '0 or more' : 'more than 0';
    throw new RangeError(
      `${name} must be a finite number of milliseconds, ${least} and at most ${MAX_TIMEOUT_MS}, ` +
        `not ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`,
    );
  }
  return value;
}
