import { sql, type RawBuilder } from 'kysely';

/**
 * Milliseconds from now until `at` (0 when it has passed), and null when `at` is null (nothing
 * waits): greatest() alone would make a null 0, since it skips nulls.
 */
export const msUntil = (at: RawBuilder<unknown>) => sql<number | null>`CASE WHEN ${at} IS NULL THEN NULL ELSE greatest(0, extract(epoch FROM ${at} - now()) * 1000)::float8 END`;
