import { parseDeliveryBody, type ForgeName } from '../../domain/forge-delivery.js';
import { forgeEvent } from '../../domain/forge-event.js';
import { fieldParameters } from '../../domain/webhook-fields.js';
import { AppError } from '../app-error.js';
import { mayStartLater, retryDelaySeconds, startRun, type RunStartDeps } from '../runs/start-run.js';
import { finishDelivery, getDeliveryWithBody, retryDeliveryLater, type DeliveryClaim, type DeliveryOutcome } from '../store/delivery-store.js';
import { startRepositoryEvent } from './start-repository-event.js';

type StoredDelivery = NonNullable<Awaited<ReturnType<typeof getDeliveryWithBody>>>;

/** A generic webhook trigger's delivery: one run of its workflow, with the body's fields as parameters. */
async function startWebhookTrigger(deps: RunStartDeps, d: StoredDelivery): Promise<DeliveryOutcome> {
  const t = await deps.database.db
    .selectFrom('triggers')
    .innerJoin('workflows', 'workflows.id', 'triggers.workflow_id')
    .select(['triggers.id', 'triggers.workflow_id', 'triggers.ref', 'triggers.parameters', 'triggers.fields', 'workflows.name'])
    .where('triggers.id', '=', d.triggerId!)
    .executeTakeFirst();
  const outcome: DeliveryOutcome = { summary: `${d.event} delivery`, runs: [], skipped: [] };
  if (!t) return { ...outcome, error: 'the trigger is gone' };
  const body = parseDeliveryBody(d.body, d.headers['content-type']);
  const run = await startRun(deps, {
    workflowId: t.workflow_id,
    target: { ref: t.ref ?? undefined, event: 'webhook' },
    parameters: { ...t.parameters, ...(body === undefined ? {} : fieldParameters(body, t.fields)) },
    reason: { type: 'webhook', triggerId: t.id, deliveryId: d.id, event: d.event },
    actorUserId: null,
    triggerKey: `delivery:${d.id}`,
    deliveryId: d.id,
  });
  outcome.runs.push({ workflowId: t.workflow_id, workflow: t.name, runId: run.id, number: Number(run.number), ...('existing' in run ? { existing: true as const } : {}) });
  return outcome;
}

async function startForgeDelivery(deps: RunStartDeps, d: StoredDelivery): Promise<DeliveryOutcome> {
  const repo = await deps.database.db.selectFrom('repositories').selectAll().where('id', '=', d.repositoryId!).executeTakeFirst();
  const event = forgeEvent(d.forge as ForgeName, d.event, parseDeliveryBody(d.body, d.headers['content-type']));
  if (!repo || !event) return { summary: `${d.event} delivery`, runs: [], skipped: [], error: !repo ? 'the repository is gone' : 'the payload lacks what the event must hold' };
  return startRepositoryEvent(deps, repo, event, { deliveryId: d.id, forge: d.forge });
}

/** Tries of a delivery that failed for a passing reason before it is given up (2 s to 60 s apart: about 9 minutes). */
export const MAX_DELIVERY_ATTEMPTS = 12;

/**
 * Turns a stored delivery that the pump claimed into runs: a forge's through its repository's
 * workflows, a webhook trigger's through its workflow. It may run more than once for one delivery
 * (a retry, a redelivery, a take-over after an instance died): each run it starts is keyed, so
 * none starts twice. A failure for a passing reason is noted on the delivery, which is tried
 * again later (and those after it in its queue wait) up to MAX_DELIVERY_ATTEMPTS times; any other
 * failure is the delivery's outcome, and its queue goes on.
 */
export async function processDelivery(deps: RunStartDeps, claim: DeliveryClaim): Promise<void> {
  const d = await getDeliveryWithBody(deps.database.db, claim.id);
  if (!d) return; // its repository or trigger was removed meanwhile
  let outcome: DeliveryOutcome;
  try {
    outcome = d.triggerId ? await startWebhookTrigger(deps, d) : await startForgeDelivery(deps, d);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (mayStartLater(err) && d.attempts + 1 < MAX_DELIVERY_ATTEMPTS) return retryDeliveryLater(deps.database.db, claim, retryDelaySeconds(d.attempts), message);
    const why = err instanceof AppError ? `${err.code}: ${message}` : message;
    outcome = { summary: `${d.event} delivery`, runs: [], skipped: [], error: mayStartLater(err) ? `gave up after ${MAX_DELIVERY_ATTEMPTS} attempts: ${why}` : why };
  }
  await finishDelivery(deps.database.db, claim, outcome.error ? 'failed' : 'done', outcome);
}
