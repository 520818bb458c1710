-- The nodes that serve data-plane checks from a key index following the change feed, each with the
-- feed position its index has applied (its acknowledgement) and a count of its lease renewals. A
-- regeneration answers only once every node not expelled has applied it; a node whose renewals stop
-- is expelled by the others once its lease has lapsed on its own clock (see pg_nodes.rs).
CREATE TABLE nodes (
    id        TEXT PRIMARY KEY,
    applied   BIGINT NOT NULL,
    renewals  BIGINT NOT NULL,
    expelled  BOOLEAN NOT NULL DEFAULT false,
    joined_at BIGINT NOT NULL
);

-- Numbers each version of a node's row: an observer that saw one number unchanged for a lease's
-- length knows that node renewed nothing meanwhile, even if its row was removed and made again.
CREATE SEQUENCE node_renewals;
