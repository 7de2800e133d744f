import type { Resources } from '../resources.js';
import { claimDeliveries, extendDeliveryClaims, msUntilNextDelivery, pruneDeliveries, type DeliveryClaim } from '../store/delivery-store.js';
import { processDelivery } from './process-delivery.js';
import { startWakeLoop, type WakeLoop } from './wake-loop.js';

/** Deliveries (of different repositories or triggers) one instance turns into runs at once. */
const PARALLEL = 4;
/** How often old deliveries are removed (see FURROW_DELIVERY_RETENTION_DAYS). */
const PRUNE_EVERY_MS = 3_600_000;
/** How long a claim holds without being renewed: another instance takes over after it, if this one died. */
const HOLD_SECONDS = 60;
/**
 * Turns stored deliveries into runs, on every instance: each repository's (and webhook
 * trigger's) one at a time, in the order they came, so that pushes queue their runs in push
 * order. It wakes when a delivery is stored or redelivered (`furrow_deliveries`) or one it
 * handles ends, and holds the deliveries it handles, renewing the hold while they last.
 */
export function startDeliveryPump(res: Pick<Resources, 'database' | 'secretBox' | 'config' | 'listener' | 'logger'>): WakeLoop {
  const { db } = res.database;
  const handling = new Map<DeliveryClaim, Promise<void>>();
  const prune = setInterval(() => {
    pruneDeliveries(db, res.config.deliveryRetentionDays).catch((err: Error) => res.logger.warn({ err }, 'could not remove old deliveries; the next hour tries again'));
  }, PRUNE_EVERY_MS);
  const renew = setInterval(() => {
    extendDeliveryClaims(db, [...handling.keys()], HOLD_SECONDS).catch((err: Error) => res.logger.warn({ err }, 'could not renew the hold of the deliveries in progress'));
  }, (HOLD_SECONDS * 1000) / 3);

  const round = async () => {
    const free = PARALLEL - handling.size;
    const taken = free > 0 ? await claimDeliveries(db, free, HOLD_SECONDS) : [];
    for (const claim of taken) {
      const done = processDelivery(res, claim)
        .catch((err: Error) => res.logger.warn({ err, deliveryId: claim.id }, 'a delivery could not be turned into runs; it is taken again once its hold has passed'))
        .finally(() => {
          handling.delete(claim);
          loop.nudge(); // the next delivery of its queue may go now
        });
      handling.set(claim, done);
    }
    // With every slot busy, the next round waits for one of them to end.
    return { took: taken.length, full: free > 0 && taken.length === free };
  };
  const msUntilDue = async () => (handling.size < PARALLEL ? msUntilNextDelivery(db) : null);
  const loop = startWakeLoop(res.listener, 'furrow_deliveries', round, msUntilDue, (err) =>
    res.logger.warn({ err }, 'the delivery pump could not reach the database; it tries again in a second'),
  );
  return {
    async stop() {
      await loop.stop();
      await Promise.all(handling.values());
      clearInterval(renew);
      clearInterval(prune);
    },
  };
}
