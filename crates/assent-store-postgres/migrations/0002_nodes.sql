-- Several nodes on one database.
--
-- Subject numbers are allocated by the append transaction from the controller's head row, which
-- it already holds locked: two nodes can no longer both hand out "the next" number.
ALTER TABLE ledger_heads ADD COLUMN next_subject BIGINT;
UPDATE ledger_heads h SET next_subject = GREATEST(
    COALESCE((SELECT MAX(number) + 1 FROM subjects s WHERE s.controller = h.controller), 0),
    COALESCE((SELECT MAX(subject_no) + 1 FROM ledger l WHERE l.controller = h.controller), 0));
ALTER TABLE ledger_heads ALTER COLUMN next_subject SET NOT NULL;

-- One record per customer id: a node that creates a customer another node created a moment
-- before is refused, adopts the stored record, and writes again.
CREATE UNIQUE INDEX subjects_by_id ON subjects (controller, id);
