import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { needsOriginCheck, sameOrigin } from './same-origin.js';

const origin = fc.webUrl({ withQueryParameters: false, withFragments: false }).map((u) => new URL(u).origin);
const path = fc.webPath();

describe('sameOrigin', () => {
  it('accepts an Origin, or failing it a Referer, from the expected origin', () => {
    fc.assert(
      fc.property(origin, path, (o, p) => {
        expect(sameOrigin({ origin: o }, o)).toBe(true);
        expect(sameOrigin({ referer: `${o}${p}` }, o)).toBe(true);
        expect(sameOrigin({ origin: o.toUpperCase() }, o)).toBe(true);
      }),
    );
  });

  it('refuses every other origin, and the Origin header wins over the Referer', () => {
    fc.assert(
      fc.property(origin, origin, path, (o, other, p) => {
        fc.pre(o !== other);
        expect(sameOrigin({ origin: other }, o)).toBe(false);
        expect(sameOrigin({ referer: `${other}${p}` }, o)).toBe(false);
        expect(sameOrigin({ origin: other, referer: `${o}/` }, o)).toBe(false);
      }),
    );
  });

  it('refuses a request that shows no origin', () => {
    expect(sameOrigin({}, 'http://ci.example.com')).toBe(false);
    expect(sameOrigin({ origin: 'null', referer: 'http://ci.example.com/' }, 'http://ci.example.com')).toBe(false);
    expect(sameOrigin({ origin: 'not a url' }, 'http://ci.example.com')).toBe(false);
    expect(sameOrigin({ origin: 'http://ci.example.com:80' }, 'http://ci.example.com')).toBe(true);
    expect(sameOrigin({ origin: 'https://ci.example.com' }, 'http://ci.example.com')).toBe(false);
  });
});

describe('needsOriginCheck', () => {
  it('checks state-changing methods and WebSocket upgrades only', () => {
    for (const m of ['POST', 'PUT', 'PATCH', 'DELETE', 'post']) expect(needsOriginCheck(m, false)).toBe(true);
    for (const m of ['GET', 'HEAD', 'OPTIONS']) expect(needsOriginCheck(m, false)).toBe(false);
    expect(needsOriginCheck('GET', true)).toBe(true);
  });
});
