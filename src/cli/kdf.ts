// Key-derivation cost. BULWARK_KDF_N (a power of two) lowers scrypt's cost for test suites that
// create many repositories; real repositories should keep the default.
import { DEFAULT_KDF, type KdfParams } from '../crypto/keys.js';

export function kdfFromEnv(): KdfParams {
  const n = Number(process.env['BULWARK_KDF_N']);
  if (Number.isInteger(n) && n >= 1024 && (n & (n - 1)) === 0) return { N: n, r: 8, p: 1 };
  return DEFAULT_KDF;
}
