import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isTransientDatabaseError, retryTransient } from './transient-error.js';

const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code });

describe('isTransientDatabaseError', () => {
  it('says yes to a database going away or coming back, and to lock conflicts', () => {
    for (const code of ['57P01', '57P02', '57P03', '08000', '08006', '08001', '08P01', '40001', '40P01', '53300', 'ECONNREFUSED', 'ECONNRESET'])
      expect(isTransientDatabaseError(withCode(code)), code).toBe(true);
    expect(isTransientDatabaseError(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isTransientDatabaseError(new Error('Client has encountered a connection error and is not queryable'))).toBe(true);
    expect(isTransientDatabaseError(new AggregateError([withCode('ECONNREFUSED')], ''))).toBe(true);
    expect(isTransientDatabaseError(new Error('wrapped', { cause: withCode('57P03') }))).toBe(true);
    // A Unix socket missing while its server restarts; any other missing file is not transient.
    expect(isTransientDatabaseError(Object.assign(withCode('ENOENT'), { syscall: 'connect' }))).toBe(true);
    expect(isTransientDatabaseError(Object.assign(withCode('ENOENT'), { syscall: 'open' }))).toBe(false);
  });

  it('says no to errors a retry would only repeat', () => {
    for (const code of ['23505', '23503', '22P02', '42P01', '42703', 'ENOENT']) expect(isTransientDatabaseError(withCode(code)), code).toBe(false);
    expect(isTransientDatabaseError(new Error('syntax error'))).toBe(false);
    expect(isTransientDatabaseError('57P01')).toBe(false);
    expect(isTransientDatabaseError(undefined)).toBe(false);
  });

  it('never says yes to a code outside the transient classes', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9A-Z]{5}$/), (code) => {
        const transient = code.startsWith('08') || ['57P01', '57P02', '57P03', '53300', '40001', '40P01'].includes(code);
        expect(isTransientDatabaseError(withCode(code, 'some failure'))).toBe(transient);
      }),
    );
  });
});

describe('retryTransient', () => {
  it('retries transient failures until the call succeeds', async () => {
    let calls = 0;
    const value = await retryTransient(async () => {
      if (++calls < 4) throw withCode('57P03');
      return 'done';
    }, { firstDelayMs: 1 });
    expect(value).toBe('done');
    expect(calls).toBe(4);
  });

  it('throws other errors at once, and transient ones once the budget is spent', async () => {
    let calls = 0;
    await expect(retryTransient(async () => (calls++, Promise.reject(withCode('23505'))), { firstDelayMs: 1 })).rejects.toMatchObject({ code: '23505' });
    expect(calls).toBe(1);
    const started = Date.now();
    await expect(retryTransient(() => Promise.reject(withCode('57P01')), { firstDelayMs: 5, maxDelayMs: 20, budgetMs: 100 })).rejects.toMatchObject({ code: '57P01' });
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
