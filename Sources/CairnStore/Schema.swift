// Every SQL statement of the store, in one place. ARCHITECTURE.md ("Storage format") explains
// each table; keep the two in step.

enum Schema {
    /// Bumped whenever the tables change. An older file is brought up to date on open by
    /// ``migrations``; a newer one is refused rather than misread.
    static let version: Int64 = 5

    /// The statements that take a file from schema version `n` (the key) to `n + 1`. Changes
    /// add tables or rebuild one with every row copied, so a migrated file loses nothing.
    static let migrations: [Int64: String] = [
        1: createPeerTables,
        2: createWritersTable + orphanPoolV3 + valueStoreV3 + pendingTablesV3 + createChangeLog + backfillChangeLog,
        3: addPeerLagColumns,
        4: createMergeDefeats + addPeerHeldColumn,  // merge_defeats is filled from the merge entries by LogStore.migrate
    ]

    /// A 16 MiB page cache: a log's indexes outgrow SQLite's 2 MiB default quickly, and every
    /// miss is a `pread` system call. (Memory-mapped reads were faster still, but the mapped
    /// pages count against the process's memory, which an import must keep small.)
    static let pragmas = """
        PRAGMA journal_mode = WAL;
        PRAGMA synchronous = NORMAL;
        PRAGMA foreign_keys = OFF;
        PRAGMA cache_size = -16384;
        """

    static let create = """
        CREATE TABLE meta(
            name TEXT PRIMARY KEY,
            value NOT NULL  -- integers and blobs, no affinity
        ) WITHOUT ROWID;

        -- Applied entries, in local ingest order. seq is the CDC cursor; parents always have a
        -- lower seq than their children. Rows are never updated except `inert`, never deleted.
        CREATE TABLE entries(
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id BLOB NOT NULL UNIQUE,
            hlc INTEGER NOT NULL,
            author BLOB NOT NULL,
            kind INTEGER NOT NULL,
            bucket TEXT,
            key TEXT,
            body BLOB NOT NULL,
            sig BLOB NOT NULL,
            inert INTEGER NOT NULL DEFAULT 0,  -- 1: by a writer revoked at this HLC; kept for the DAG, not in the state
            ingested_ms INTEGER NOT NULL
        );
        CREATE INDEX entries_hlc_id ON entries(hlc, id);
        CREATE INDEX entries_key ON entries(bucket, key, hlc) WHERE bucket IS NOT NULL;
        CREATE INDEX entries_author ON entries(author, hlc);

        CREATE TABLE parents(
            child BLOB NOT NULL,
            parent BLOB NOT NULL,
            PRIMARY KEY(child, parent)
        ) WITHOUT ROWID;
        CREATE INDEX parents_parent ON parents(parent);

        CREATE TABLE heads(id BLOB PRIMARY KEY) WITHOUT ROWID;

        -- The materialized last-writer-wins state: the greatest (hlc, author, id) per key.
        CREATE TABLE state(
            bucket TEXT NOT NULL,
            key TEXT NOT NULL,
            entry_id BLOB NOT NULL,
            hlc INTEGER NOT NULL,
            author BLOB NOT NULL,
            deleted INTEGER NOT NULL,
            value_digest BLOB,
            value_length INTEGER,
            PRIMARY KEY(bucket, key)
        ) WITHOUT ROWID;

        -- Verified entries waiting for parents (table orphans: createPendingTables).
        CREATE TABLE orphan_waits(
            parent BLOB NOT NULL,
            orphan BLOB NOT NULL,
            PRIMARY KEY(parent, orphan)
        ) WITHOUT ROWID;

        -- One row per writer-set entry (genesis grant, add, revoke), derived from the entries.
        CREATE TABLE writer_events(
            entry_id BLOB NOT NULL,
            key BLOB NOT NULL,
            role INTEGER,             -- grants: 0 writer, 1 admin
            revoked_from INTEGER,     -- revokes: the HLC from which the key may not write
            PRIMARY KEY(entry_id, key)
        ) WITHOUT ROWID;
        CREATE INDEX writer_events_key ON writer_events(key);

        \(createPeerTables)
        \(createWritersTable)
        \(createValueStore)
        \(createPendingTables)
        \(orphanPoolV3)
        \(createChangeLog)
        \(addPeerLagColumns)
        \(createMergeDefeats)
        \(addPeerHeldColumn)
        """

    /// Schema version 3: the writer set, derived from `writer_events` by the writer-set rule.
    /// A file migrated to it has the table filled (and inert flags brought in line) on open.
    static let createWritersTable = """
        CREATE TABLE writers(
            key BLOB PRIMARY KEY,
            role INTEGER,             -- 0 writer, 1 admin; NULL: only ever revoked, never granted
            revoked_from INTEGER      -- the HLC from which the key may not write; NULL: not revoked
        ) WITHOUT ROWID;
        """

    // MARK: meta
    static let getMeta = "SELECT value FROM meta WHERE name = ?1"
    static let putMeta = "INSERT INTO meta(name, value) VALUES(?1, ?2) ON CONFLICT(name) DO UPDATE SET value = excluded.value"

    // MARK: entries
    static let insertEntry = """
        INSERT INTO entries(id, hlc, author, kind, bucket, key, body, sig, ingested_ms, inert)
        VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
        """
    static let entryExists = "SELECT 1 FROM entries WHERE id = ?1"
    static let entryHLC = "SELECT hlc FROM entries WHERE id = ?1"
    static let entryColumns = "seq, id, hlc, author, kind, bucket, key, body, sig, inert, ingested_ms"
    static let entryByID = "SELECT \(entryColumns) FROM entries WHERE id = ?1"
    static let entriesByIDPrefix = "SELECT \(entryColumns) FROM entries WHERE id >= ?1 AND id < ?2 LIMIT 2"
    static let entriesByIDPrefixList = "SELECT \(entryColumns) FROM entries WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT ?3"
    static let childCount = "SELECT count(*) FROM parents WHERE parent = ?1"
    static let entrySummaryByID = "SELECT hlc, author FROM entries WHERE id = ?1"
    static let entriesAfterSeq = "SELECT \(entryColumns) FROM entries WHERE seq > ?1 ORDER BY seq LIMIT ?2"
    static let entriesByKey = "SELECT \(entryColumns) FROM entries WHERE bucket = ?1 AND key = ?2 ORDER BY hlc, author, id"
    static let quickCheck = "PRAGMA quick_check"
    static let seqAndHLC = "SELECT seq, hlc FROM entries WHERE id = ?1"
    static let headsNotChildless = "SELECT h.id FROM heads h WHERE EXISTS (SELECT 1 FROM parents p WHERE p.parent = h.id) OR NOT EXISTS (SELECT 1 FROM entries e WHERE e.id = h.id)"
    static let childlessNotHeads = "SELECT e.id FROM entries e WHERE NOT EXISTS (SELECT 1 FROM parents p WHERE p.parent = e.id) AND NOT EXISTS (SELECT 1 FROM heads h WHERE h.id = e.id)"
    /// `history`: the HLC of a key's second-oldest write, and the merges above an HLC.
    /// `cairn log`: the filtered entries by HLC; the last parameter is the LIMIT (-1: none).
    static func log(conditions: [String], newestFirst: Bool) -> String {
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let order = newestFirst ? "DESC" : "ASC"
        return "SELECT \(entryColumns) FROM entries \(whereClause) ORDER BY hlc \(order), id \(order) LIMIT ?"
    }
    static let maxHLC = "SELECT max(hlc) FROM entries"
    static let maxHLCAtMost = "SELECT max(hlc) FROM entries WHERE hlc <= ?1"
    static let maxHLCByAuthor = "SELECT max(hlc) FROM entries WHERE author = ?1"
    /// The greatest HLC among an author's orphans, as 8 big-endian bytes, read from the body
    /// (`version | kind | hlc u64 | author[32] | …`, docs/entry-format.md): blobs compare bytewise.
    static let maxOrphanHLCByAuthor = "SELECT max(substr(body, 3, 8)) FROM orphans WHERE substr(body, 11, 32) = ?1"
    /// The newest entry of an author, its kind, and the local transaction that wrote it (NULL:
    /// received, not appended here).
    static let newestByAuthorWrittenHere = """
        SELECT e.id, e.kind, (SELECT c.txn FROM changes c WHERE c.entry_seq = e.seq AND c.cause = 0)
        FROM entries e WHERE e.author = ?1 ORDER BY e.hlc DESC LIMIT 1
        """
    static let maxSeq = "SELECT max(seq) FROM entries"
    static let entryCount = "SELECT count(*) FROM entries"

    // MARK: parents and heads
    static let insertParent = "INSERT INTO parents(child, parent) VALUES(?1, ?2)"
    static let parentsOf = "SELECT parent FROM parents WHERE child = ?1"
    static let hasChildren = "SELECT 1 FROM parents WHERE parent = ?1 LIMIT 1"
    /// Whether an entry has a child stamped at or below an HLC (the parent frontier).
    static let hasChildAtMost = """
        SELECT 1 FROM parents p CROSS JOIN entries e ON e.id = p.child WHERE p.parent = ?1 AND e.hlc <= ?2 LIMIT 1
        """
    static let deleteHead = "DELETE FROM heads WHERE id = ?1"
    static let insertHead = "INSERT OR IGNORE INTO heads(id) VALUES(?1)"
    /// CROSS JOIN makes `heads` (a handful of rows) the outer loop; with a plain JOIN the planner
    /// scans all entries in `(hlc, id)` order to avoid a sort, which made every write O(n).
    static let heads = "SELECT h.id, e.hlc FROM heads h CROSS JOIN entries e ON e.id = h.id ORDER BY e.hlc, h.id"

    // MARK: values
    static let insertValue = """
        INSERT INTO value_store(digest, length, data) VALUES(?1, ?2, ?3)
        ON CONFLICT(digest) DO UPDATE SET data = excluded.data
        WHERE value_store.data IS NULL AND value_store.purged = 0
        """
    static let insertMissingValue = "INSERT OR IGNORE INTO value_store(digest, length, data) VALUES(?1, ?2, NULL)"
    static let getValue = "SELECT data, purged FROM value_store WHERE digest = ?1"
    static let purgeValue = "UPDATE value_store SET data = NULL, purged = 1 WHERE digest = ?1"
    static let markPurged = """
        INSERT INTO value_store(digest, length, data, purged) VALUES(?1, 0, NULL, 1)
        ON CONFLICT(digest) DO UPDATE SET data = NULL, purged = 1
        """
    static let allValues = "SELECT digest, length, data FROM value_store WHERE data IS NOT NULL"

    // MARK: state
    static let stateRow = "SELECT entry_id, hlc, author, deleted, value_digest, value_length FROM state WHERE bucket = ?1 AND key = ?2"
    static let upsertState = """
        INSERT INTO state(bucket, key, entry_id, hlc, author, deleted, value_digest, value_length)
        VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
        ON CONFLICT(bucket, key) DO UPDATE SET
            entry_id = excluded.entry_id, hlc = excluded.hlc, author = excluded.author,
            deleted = excluded.deleted, value_digest = excluded.value_digest, value_length = excluded.value_length
        """
    static let deleteState = "DELETE FROM state WHERE bucket = ?1 AND key = ?2"
    /// The LWW winner among a key's live writes: `ORDER BY hlc, author, id` descending.
    static let keyWinner = """
        SELECT id FROM entries WHERE bucket = ?1 AND key = ?2 AND inert = 0
        ORDER BY hlc DESC, author DESC, id DESC LIMIT 1
        """
    /// The LWW winner among a key's live writes applied before a sequence number (CDC `before`).
    static let keyWinnerBeforeSeq = """
        SELECT id FROM entries WHERE bucket = ?1 AND key = ?2 AND inert = 0 AND seq < ?3
        ORDER BY hlc DESC, author DESC, id DESC LIMIT 1
        """
    /// `ls`, page by page: the live keys from `key >= ?2` (the first page) or after `key > ?2`.
    static let listStateFrom = """
        SELECT bucket, key, entry_id, hlc, author, deleted, value_digest, value_length FROM state
        WHERE bucket = ?1 AND key >= ?2 AND deleted = 0 ORDER BY key LIMIT ?3
        """
    static let listStateAfter = """
        SELECT bucket, key, entry_id, hlc, author, deleted, value_digest, value_length FROM state
        WHERE bucket = ?1 AND key > ?2 AND deleted = 0 ORDER BY key LIMIT ?3
        """
    static let buckets = "SELECT bucket, count(*) FROM state WHERE deleted = 0 GROUP BY bucket ORDER BY bucket"
    /// State rows whose entry is not the LWW winner of the key (verify).
    static let staleState = """
        SELECT s.bucket, s.key FROM state s
        WHERE s.entry_id IS NOT (SELECT id FROM entries e WHERE e.bucket = s.bucket AND e.key = s.key AND e.inert = 0
                                 ORDER BY e.hlc DESC, e.author DESC, e.id DESC LIMIT 1)
        """
    /// Keys with live writes but no state row (verify).
    static let missingState = """
        SELECT DISTINCT e.bucket, e.key FROM entries e
        WHERE e.bucket IS NOT NULL AND e.inert = 0
          AND NOT EXISTS (SELECT 1 FROM state s WHERE s.bucket = e.bucket AND s.key = e.key)
        """

    // MARK: verify and repair
    static let writerSetBodies = "SELECT body, sig FROM entries WHERE kind IN (1, 5, 6)"
    static let allState = "SELECT bucket, key, entry_id, hlc, author, deleted, value_digest, value_length FROM state"
    static let valueLength = "SELECT length, purged FROM value_store WHERE digest = ?1"
    static let allOrphans = "SELECT id, body, sig FROM orphans"
    static let allQuarantined = "SELECT id, body, sig FROM quarantine"
    static let waitsOfOrphan = "SELECT parent FROM orphan_waits WHERE orphan = ?1"
    static let strayOrphanWaits = "SELECT orphan FROM orphan_waits w WHERE NOT EXISTS (SELECT 1 FROM orphans o WHERE o.id = w.orphan)"
    static let liveKeys = "SELECT DISTINCT bucket, key FROM entries WHERE bucket IS NOT NULL AND inert = 0"
    static let forgetValueBytes = "UPDATE value_store SET data = NULL WHERE digest = ?1"
    static let rewriteEntryColumns = """
        UPDATE entries SET hlc = ?2, author = ?3, kind = ?4, bucket = ?5, key = ?6, inert = (?4 IN (2, 3, 4))
        WHERE seq = ?1
        """
    /// Everything `repair` rebuilds from the entries. Puts, deletes and merges start inert and
    /// the writer-set recomputation clears the flag of every key that may write.
    static let clearDerivedTables = """
        DELETE FROM parents; DELETE FROM heads; DELETE FROM state; DELETE FROM writer_events;
        DELETE FROM writers; DELETE FROM orphan_waits; DELETE FROM merge_defeats;
        """
    static let rebuildHeads = """
        INSERT INTO heads(id) SELECT e.id FROM entries e WHERE NOT EXISTS (SELECT 1 FROM parents p WHERE p.parent = e.id)
        """

    // MARK: orphans
    static let insertOrphan = "INSERT OR IGNORE INTO orphans(id, body, sig, value, received_ms) VALUES(?1, ?2, ?3, ?4, ?5)"
    static let insertOrphanWait = "INSERT OR IGNORE INTO orphan_waits(parent, orphan) VALUES(?1, ?2)"
    static let orphanExists = "SELECT 1 FROM orphans WHERE id = ?1"
    static let orphansWaitingFor = "SELECT orphan FROM orphan_waits WHERE parent = ?1"
    static let deleteOrphanWaits = "DELETE FROM orphan_waits WHERE parent = ?1"
    static let orphanStillWaits = "SELECT 1 FROM orphan_waits WHERE orphan = ?1 LIMIT 1"
    static let takeOrphan = "DELETE FROM orphans WHERE id = ?1 RETURNING body, sig, value"
    /// The pool size, kept in `meta.orphan_count` (schema 3) so the limit check is O(1).
    static let orphanCount = "SELECT value FROM meta WHERE name = 'orphan_count'"
    /// Counting the rows: for a read-only connection on a schema-2 file (no counter), and verify.
    static let orphanRows = "SELECT count(*) FROM orphans"
    static let addToOrphanCount = "UPDATE meta SET value = value + ?1 WHERE name = 'orphan_count'"
    /// Parents orphans wait for that are not themselves pending here: what to ask peers for.
    static let missingParents = """
        SELECT DISTINCT parent FROM orphan_waits w
        WHERE NOT EXISTS (SELECT 1 FROM orphans o WHERE o.id = w.parent)
          AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.id = w.parent)
        ORDER BY parent LIMIT ?1
        """

    // MARK: quarantine
    static let insertQuarantine = """
        INSERT OR IGNORE INTO quarantine(id, body, sig, value, hlc, received_ms, checked_ms)
        VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6)
        """
    static let quarantineExists = "SELECT 1 FROM quarantine WHERE id = ?1"
    static let quarantineDue = "SELECT id FROM quarantine WHERE hlc <= ?1 ORDER BY hlc LIMIT ?2"
    static let takeQuarantined = "DELETE FROM quarantine WHERE id = ?1 RETURNING body, sig, value"
    static let touchQuarantine = "UPDATE quarantine SET checked_ms = ?1"
    static let quarantineCount = "SELECT count(*) FROM quarantine"
    static let quarantineCountAtMost = "SELECT count(*) FROM quarantine WHERE hlc <= ?1"
    /// Orphans waiting, directly or through other orphans, for a quarantined entry.
    static let orphansWaitingForQuarantine = """
        WITH RECURSIVE held(id) AS (
            SELECT w.orphan FROM quarantine q CROSS JOIN orphan_waits w ON w.parent = q.id
            UNION
            SELECT w.orphan FROM orphan_waits w JOIN held h ON w.parent = h.id
        )
        SELECT count(*) FROM held WHERE EXISTS (SELECT 1 FROM orphans o WHERE o.id = held.id)
        """
    static let quarantineList = "SELECT id, hlc, received_ms, checked_ms FROM quarantine ORDER BY hlc LIMIT ?1"

    // MARK: writers
    static let insertWriterEvent = "INSERT OR IGNORE INTO writer_events(entry_id, key, role, revoked_from) VALUES(?1, ?2, ?3, ?4)"
    /// Every event naming a key, with whether its entry is inert (an inert grant does not count,
    /// but a key granted only by inert entries is treated as revoked, not as unknown).
    static let writerEventsForKey = """
        SELECT w.role, w.revoked_from, e.inert FROM writer_events w JOIN entries e ON e.id = w.entry_id
        WHERE w.key = ?1
        """
    /// Every writer-set event with its entry's LWW position (the writer-set rule's input).
    static let writerSetEvents = """
        SELECT e.id, e.hlc, e.author, e.kind, w.key, w.role, w.revoked_from
        FROM writer_events w JOIN entries e ON e.id = w.entry_id
        """
    /// The writer-set entries (genesis, add, revoke) in the writer-set rule's order (the audit view's writer history).
    static let writerSetEntries = "SELECT \(entryColumns) FROM entries WHERE kind IN (1, 5, 6) ORDER BY hlc, author, id"
    static let writerRow = "SELECT role, revoked_from FROM writers WHERE key = ?1"
    static let writersTable = "SELECT key, role, revoked_from FROM writers ORDER BY key"
    static let upsertWriter = """
        INSERT INTO writers(key, role, revoked_from) VALUES(?1, ?2, ?3)
        ON CONFLICT(key) DO UPDATE SET role = excluded.role, revoked_from = excluded.revoked_from
        """
    static let deleteWriter = "DELETE FROM writers WHERE key = ?1"
    static let setInert = "UPDATE entries SET inert = ?2 WHERE id = ?1 AND inert != ?2"
    /// Sets the inert flag of a key's puts, deletes and merges: inert from HLC ?2 on.
    static let markAuthorInert = """
        UPDATE entries SET inert = (hlc >= ?2) WHERE author = ?1 AND kind IN (2, 3, 4) AND inert != (hlc >= ?2)
        RETURNING bucket, key
        """

    // MARK: - Peers

    /// Schema version 2. Local to this node, never synced: whom to dial, and what the sync
    /// service last saw of each peer.
    static let createPeerTables = """
        -- Addresses this node dials (cairn peers add, cairn join), normalized host:port.
        CREATE TABLE peers(
            address TEXT PRIMARY KEY,
            identity BLOB             -- the pinned Ed25519 node key; NULL: any holder of the network secret
        ) WITHOUT ROWID;

        -- What the sync service last knew of each peer, by the peer's node key.
        CREATE TABLE peer_status(
            identity BLOB PRIMARY KEY,
            address TEXT NOT NULL,    -- where it was reached or connected from
            state TEXT NOT NULL,      -- connected, disconnected, ...
            last_connected_ms INTEGER,
            last_sync_ms INTEGER,
            heads_hlc INTEGER,        -- the newest HLC among the heads it last advertised
            entries_sent INTEGER NOT NULL,
            entries_received INTEGER NOT NULL,
            entries_rejected INTEGER NOT NULL,
            last_error TEXT
        ) WITHOUT ROWID;
        """
    /// Schema version 4: how far this node is behind each peer, as the sync service measured it.
    static let addPeerLagColumns = """
        ALTER TABLE peer_status ADD COLUMN lag_entries INTEGER;    -- entries the peer holds that this node lacks
        ALTER TABLE peer_status ADD COLUMN lag_oldest_ms INTEGER;  -- wall time of the oldest of them (HLC ms)
        ALTER TABLE peer_status ADD COLUMN lag_lower_bound INTEGER NOT NULL DEFAULT 0;  -- 1: lag_entries is a lower bound
        """
    /// Schema version 5: the entries each peer was last known to hold, so a restored peer is
    /// detected after this node restarts too (the sync service's `HeldEntries`, encoded).
    static let addPeerHeldColumn = """
        ALTER TABLE peer_status ADD COLUMN held BLOB;  -- up to 8 × (entry id 32 bytes, HLC u64 big-endian), newest first
        """
    static let savePeerHeld = "UPDATE peer_status SET held = ?2 WHERE identity = ?1"
    static let peerHeld = "SELECT held FROM peer_status WHERE identity = ?1"
    static let upsertPeer = "INSERT INTO peers(address, identity) VALUES(?1, ?2) ON CONFLICT(address) DO UPDATE SET identity = excluded.identity"
    static let deletePeer = "DELETE FROM peers WHERE address = ?1"
    static let peers = "SELECT address, identity FROM peers ORDER BY address"
    static let peerStatusColumns = """
        identity, address, state, last_connected_ms, last_sync_ms, heads_hlc, entries_sent, entries_received, entries_rejected, last_error,
        lag_entries, lag_oldest_ms, lag_lower_bound
        """
    static let upsertPeerStatus = """
        INSERT INTO peer_status(\(peerStatusColumns)) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
        ON CONFLICT(identity) DO UPDATE SET
            address = excluded.address, state = excluded.state, last_connected_ms = excluded.last_connected_ms,
            last_sync_ms = excluded.last_sync_ms, heads_hlc = excluded.heads_hlc, entries_sent = excluded.entries_sent,
            entries_received = excluded.entries_received, entries_rejected = excluded.entries_rejected,
            last_error = excluded.last_error, lag_entries = excluded.lag_entries, lag_oldest_ms = excluded.lag_oldest_ms,
            lag_lower_bound = excluded.lag_lower_bound
        """
    static let peerStatuses = "SELECT \(peerStatusColumns) FROM peer_status ORDER BY identity"
    static let peerStatusByIdentity = "SELECT \(peerStatusColumns) FROM peer_status WHERE identity = ?1"

    // MARK: - Schema version 3

    /// Schema version 3, orphan pool: `meta.orphan_count` holds the number of rows in
    /// `orphans`. Every insert into and take from the pool adjusts it in the same transaction,
    /// so checking ``StoreOptions/orphanLimit`` does not count the pool. Initialised from the
    /// rows on migration (and to 0 on create). The index answers "does this orphan still wait
    /// for a parent?" (`orphanStillWaits`), which scanned all waits once per released orphan.
    static let orphanPoolV3 = """
        INSERT OR REPLACE INTO meta(name, value) SELECT 'orphan_count', count(*) FROM orphans;
        CREATE INDEX IF NOT EXISTS orphan_waits_orphan ON orphan_waits(orphan);
        """

    /// Schema version 3, values: value bytes beside the entries, by digest (`data IS NULL`:
    /// purged, or never received).
    ///
    /// A rowid table with a separate unique index on `digest`. A lookup walks that small index
    /// and then one integer-keyed row, and never touches another row's bytes: in the
    /// `WITHOUT ROWID` table of schema 2 the b-tree held whole rows, and its binary search read
    /// a 50 MiB row in full to compare keys, so one large value slowed every `get`. `data` is
    /// the last column, so reading `length` or `purged` never walks a large value's overflow
    /// pages.
    static let createValueStore = """
        CREATE TABLE value_store(
            digest BLOB NOT NULL UNIQUE,
            length INTEGER NOT NULL,
            purged INTEGER NOT NULL DEFAULT 0,
            data BLOB
        );
        """

    /// Moves a schema-2 `value_store` into the layout of ``createValueStore``, inside the
    /// migration's transaction.
    static let valueStoreV3 = """
        ALTER TABLE value_store RENAME TO value_store_v2;
        \(createValueStore)
        INSERT INTO value_store(digest, length, purged, data)
            SELECT digest, length, purged, data FROM value_store_v2 ORDER BY digest;
        DROP TABLE value_store_v2;
        """

    /// Schema version 3, pending entries: orphans (verified, waiting for parents; applied
    /// when the last one arrives) and quarantine (verified, stamped too far in the future;
    /// re-checked later, never applied early).
    ///
    /// Rowid tables with a unique index on `id` and `value` last, for the reason given at
    /// ``createValueStore``: in schema 2 they were `WITHOUT ROWID`, so one pending 50 MiB
    /// value was read in full by the duplicate check of every incoming entry.
    static let createPendingTables = """
        CREATE TABLE orphans(
            id BLOB NOT NULL UNIQUE,
            body BLOB NOT NULL,
            sig BLOB NOT NULL,
            received_ms INTEGER NOT NULL,
            value BLOB
        );
        CREATE TABLE quarantine(
            id BLOB NOT NULL UNIQUE,
            body BLOB NOT NULL,
            sig BLOB NOT NULL,
            hlc INTEGER NOT NULL,
            received_ms INTEGER NOT NULL,
            checked_ms INTEGER NOT NULL,
            value BLOB
        );
        """

    /// Moves schema-2 `orphans` and `quarantine` into the layout of ``createPendingTables``.
    static let pendingTablesV3 = """
        ALTER TABLE orphans RENAME TO orphans_v2;
        ALTER TABLE quarantine RENAME TO quarantine_v2;
        \(createPendingTables)
        INSERT INTO orphans(id, body, sig, received_ms, value)
            SELECT id, body, sig, received_ms, value FROM orphans_v2 ORDER BY id;
        INSERT INTO quarantine(id, body, sig, hlc, received_ms, checked_ms, value)
            SELECT id, body, sig, hlc, received_ms, checked_ms, value FROM quarantine_v2 ORDER BY id;
        DROP TABLE orphans_v2;
        DROP TABLE quarantine_v2;
        """

    // MARK: - Change log (schema version 3)

    /// The change stream, recorded as the state changes and never rewritten: one row per
    /// applied entry (cause 0: the key's winner just before and just after it landed; for an
    /// entry without a key, both NULL), and one row per other change of a key's winner (cause
    /// 1: a writer-set entry flipped inert flags; cause 2: a rebuild — `verify --repair`, or
    /// the writer set derived on migration). `seq` is the CDC cursor. Rows are never updated
    /// or deleted.
    static let createChangeLog = """
        CREATE TABLE changes(
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            entry_seq INTEGER NOT NULL,  -- the entry applied (cause 0) or whose application caused the change
            cause INTEGER NOT NULL,      -- 0 entry, 1 writer set, 2 rebuild
            bucket TEXT,
            key TEXT,
            before_id BLOB,              -- the key's winning write (put or tombstone) before; NULL: none
            after_id BLOB,               -- and after
            inert INTEGER NOT NULL,      -- the entry's inert flag when the row was written
            txn INTEGER,                 -- a local append transaction: the seq of its first row; NULL otherwise
            ts_ms INTEGER NOT NULL       -- when this node recorded the change
        );
        CREATE INDEX changes_entry ON changes(entry_seq);
        CREATE INDEX changes_txn ON changes(txn) WHERE txn IS NOT NULL;
        """

    /// Fills the change log of a migrated file: one row per entry at the entry's own `seq` (so
    /// a cursor stored before the migration still means the same position), with the key's
    /// winner before and after as the stream computed them before the change log existed.
    static let backfillChangeLog = """
        INSERT INTO changes(seq, entry_seq, cause, bucket, key, before_id, after_id, inert, txn, ts_ms)
        SELECT e.seq, e.seq, 0, e.bucket, e.key,
            (SELECT w.id FROM entries w WHERE w.bucket = e.bucket AND w.key = e.key AND w.inert = 0 AND w.seq < e.seq
             ORDER BY w.hlc DESC, w.author DESC, w.id DESC LIMIT 1),
            (SELECT w.id FROM entries w WHERE w.bucket = e.bucket AND w.key = e.key AND w.inert = 0 AND w.seq <= e.seq
             ORDER BY w.hlc DESC, w.author DESC, w.id DESC LIMIT 1),
            e.inert, NULL, e.ingested_ms
        FROM entries e ORDER BY e.seq;
        """
    static let hasChangeLog = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'changes'"
    static let insertChange = """
        INSERT INTO changes(entry_seq, cause, bucket, key, before_id, after_id, inert, txn, ts_ms)
        VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
        """
    static let stateWinnerID = "SELECT entry_id FROM state WHERE bucket = ?1 AND key = ?2"
    static let entryInert = "SELECT inert FROM entries WHERE seq = ?1"
    static let maxChangeSeq = "SELECT max(seq) FROM changes"
    static let nextChangeSeq = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0) + 1"
    /// The change rows after a cursor with the entry each names and the before/after writes
    /// (their bodies: the value digest and length are in the payload).
    static let changesAfter = """
        SELECT c.seq, c.cause, c.bucket, c.key, c.inert, c.txn, c.ts_ms,
               e.seq, e.body, e.sig, e.ingested_ms, e.id,
               c.before_id, b.body, c.after_id, a.body
        FROM changes c JOIN entries e ON e.seq = c.entry_seq
        LEFT JOIN entries b ON b.id = c.before_id
        LEFT JOIN entries a ON a.id = c.after_id
        WHERE c.seq > ?1 ORDER BY c.seq LIMIT ?2
        """
    /// The last change of a transaction (its rows are consecutive: one writer at a time).
    static let transactionEnd = "SELECT max(seq) FROM changes WHERE txn = ?1"
    /// Per bucket, the changes of a transaction before a cursor (resuming inside one).
    static let transactionBucketCounts = """
        SELECT bucket, count(*) FROM changes WHERE txn = ?1 AND seq < ?2 GROUP BY bucket
        """
    static let changeSeqOfEntry = """
        SELECT c.seq FROM entries e JOIN changes c ON c.entry_seq = e.seq AND c.cause = 0 WHERE e.id = ?1
        """
    /// Live keys for a snapshot, with their winner's body, in (bucket, key) order.
    static let snapshotState = """
        SELECT s.bucket, s.key, e.seq, e.body, e.sig, e.ingested_ms, e.id, e.inert FROM state s JOIN entries e ON e.id = s.entry_id
        WHERE s.deleted = 0 AND (s.bucket > ?1 OR (s.bucket = ?1 AND s.key > ?2)) ORDER BY s.bucket, s.key LIMIT ?3
        """
    static let saveStateForRebuild = """
        DROP TABLE IF EXISTS temp.state_before_rebuild;
        CREATE TEMP TABLE state_before_rebuild AS SELECT bucket, key, entry_id FROM state;
        """
    /// After a rebuild: one change row per key whose winner differs from before (cause 2).
    static let recordRebuildChanges = """
        INSERT INTO changes(entry_seq, cause, bucket, key, before_id, after_id, inert, txn, ts_ms)
        SELECT ?1, 2, bucket, key, before_id, after_id, 0, NULL, ?2 FROM (
            SELECT b.bucket AS bucket, b.key AS key, b.entry_id AS before_id, s.entry_id AS after_id
            FROM temp.state_before_rebuild b LEFT JOIN state s ON s.bucket = b.bucket AND s.key = b.key
            WHERE s.entry_id IS NOT b.entry_id
            UNION ALL
            SELECT s.bucket, s.key, NULL, s.entry_id FROM state s
            WHERE NOT EXISTS (SELECT 1 FROM temp.state_before_rebuild b WHERE b.bucket = s.bucket AND b.key = s.key)
            ORDER BY 1, 2
        )
        """
    static let dropStateBeforeRebuild = "DROP TABLE temp.state_before_rebuild"

    // MARK: - Delta

    /// The id of the newest entry applied at or before a sequence number (the have sample).
    static let entryIDAtOrBeforeSeq = "SELECT id FROM entries WHERE seq <= ?1 ORDER BY seq DESC LIMIT 1"
    /// Ids after a sequence number, in seq order (what the pusher checks before reading entries).
    static let entryIDsAfterSeq = "SELECT seq, id FROM entries WHERE seq > ?1 ORDER BY seq LIMIT ?2"

    // MARK: - Merge defeats (schema version 5)

    /// Who lost to whom, by merge: one row per loser of each decision a merge entry records,
    /// derived from the merge entries alone. A key's history finds the merges that decided
    /// about each of its versions by this index instead of reading every merge since.
    static let createMergeDefeats = """
        CREATE TABLE merge_defeats(
            loser BLOB NOT NULL,   -- a write the decision ranked below the winner
            merge BLOB NOT NULL,   -- the merge entry recording the decision
            winner BLOB NOT NULL,  -- the write the decision named
            PRIMARY KEY(loser, merge)
        ) WITHOUT ROWID;
        """
    /// A read-only open of a schema-4 file reads its history through a temporary copy.
    static let createTemporaryMergeDefeats = createMergeDefeats.replacingOccurrences(of: "CREATE TABLE", with: "CREATE TEMP TABLE")
    static let hasMergeDefeats = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'merge_defeats'"
    static let insertDefeat = "INSERT OR IGNORE INTO merge_defeats(loser, merge, winner) VALUES(?1, ?2, ?3)"
    static let defeatExists = "SELECT 1 FROM merge_defeats WHERE loser = ?1 AND merge = ?2 AND winner = ?3"
    static let defeatCount = "SELECT count(*) FROM merge_defeats"
    static let defeatsOf = "SELECT d.merge, d.winner FROM merge_defeats d JOIN entries e ON e.id = d.merge WHERE d.loser = ?1 ORDER BY e.seq"
    static let mergeEntries = "SELECT body, sig FROM entries WHERE kind = 4 ORDER BY seq"
    /// The merges that decided about any version of a key.
    static let mergesDecidingKey = """
        SELECT DISTINCT d.merge FROM entries e JOIN merge_defeats d ON d.loser = e.id WHERE e.bucket = ?1 AND e.key = ?2
        """

    // MARK: - A key's history, in pages (LWW order)

    static let historyCount = "SELECT count(*) FROM entries WHERE bucket = ?1 AND key = ?2"
    static let historyFirstPage = "SELECT \(entryColumns) FROM entries WHERE bucket = ?1 AND key = ?2 ORDER BY hlc, author, id LIMIT ?3"
    static let historyPageAfter = """
        SELECT \(entryColumns) FROM entries WHERE bucket = ?1 AND key = ?2 AND (hlc, author, id) > (?3, ?4, ?5)
        ORDER BY hlc, author, id LIMIT ?6
        """
    static let historyNewest = "SELECT \(entryColumns) FROM entries WHERE bucket = ?1 AND key = ?2 ORDER BY hlc DESC, author DESC, id DESC LIMIT ?3"
}
