import { AppError } from '../app-error.js';
import { decodeCursor } from '../store/run-store.js';

/** A list's `cursor` query parameter, decoded; 400 when it is not one the API handed out. */
export function listCursor(cursor: string | undefined) {
  if (cursor === undefined) return undefined;
  const decoded = decodeCursor(cursor);
  if (!decoded) throw new AppError('validation_failed', 'cursor is not one this API handed out.', [{ field: 'cursor', message: 'is not valid' }]);
  return decoded;
}
