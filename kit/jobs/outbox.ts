import { randomUUID } from "node:crypto";
import { create, type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { defineEntity, type EntityManager, p } from "@mikro-orm/core";
import { EnvelopeSchema } from "../../gen/protomesh/events/v1/envelope_pb.ts";

/** An event waiting in the producer's database to be relayed to its stream. */
export const OutboxEvent = defineEntity({
  name: "OutboxEvent",
  tableName: "outbox_event",
  properties: {
    seq: p.bigint("number").primary().autoincrement(),
    id: p.uuid().unique(),
    stream: p.text(),
    envelope: p.blob(),
    createdAt: p.datetime().onCreate(() => new Date()),
  },
});

/** The entities every service that publishes events registers with its ORM. */
export const jobEntities = [OutboxEvent];

/** An event to publish: the stream, the message's schema and the message. */
export interface OutgoingEvent<D extends DescMessage> {
  readonly stream: string;
  readonly schema: D;
  readonly message: MessageShape<D>;
  /** The producing service, for example "user". */
  readonly source: string;
  /** W3C trace context of the request that produced the event. */
  readonly traceparent?: string | undefined;
}

/**
 * Stores an event in the transactional outbox through `em`: call it inside the transaction
 * that makes the state change, so the event exists exactly when the change commits.
 * Returns the event id.
 */
export function publishEvent<D extends DescMessage>(
  em: EntityManager,
  event: OutgoingEvent<D>,
): string {
  const id = randomUUID();
  const envelope = create(EnvelopeSchema, {
    id,
    type: event.schema.typeName,
    time: timestampNow(),
    traceparent: event.traceparent ?? "",
    payload: toBinary(event.schema, event.message),
    source: event.source,
  });
  em.create(OutboxEvent, {
    id,
    stream: event.stream,
    envelope: toBinary(EnvelopeSchema, envelope),
  });
  return id;
}
