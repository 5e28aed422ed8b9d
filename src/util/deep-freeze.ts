// Deep freezing for data that many holders share and none may change (decoded route tables, cluster policies).

/** Freezes `v` and every object and array under it; a frozen object is taken as frozen all the way down. */
export function deepFreeze<T>(v: T): T {
  if (typeof v !== 'object' || v === null || Object.isFrozen(v)) return v;
  for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  return Object.freeze(v);
}
