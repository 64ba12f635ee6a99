-- LlamaDesk history, schema v4. Frozen: made by the v4 code with tests/data/make_history_dump.py, never edit by hand.
-- Loaded by tests/core/test_history.py::test_migrates_dump to check every later migration.
PRAGMA user_version=4;
BEGIN TRANSACTION;
CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        model TEXT,
        system_prompt TEXT NOT NULL DEFAULT '',
        sampling_json TEXT NOT NULL DEFAULT '{}',
        pinned INTEGER NOT NULL DEFAULT 0,
        leaf_message_id INTEGER NULL
    , deleted_at REAL NULL, source TEXT NOT NULL DEFAULT 'app');
INSERT INTO "conversations" VALUES(1,'Ginger cake',1767225600.0,1767225643.5,'qwen2.5-0.5b-instruct-q4_k_m.gguf','You are a concise baker.','{"seed": 42, "temperature": 0.2, "top_p": 0.9}',0,4,NULL,'app');
INSERT INTO "conversations" VALUES(2,'Pinned notes',1767225650.75,1767225672.5,NULL,'','{}',1,7,NULL,'app');
INSERT INTO "conversations" VALUES(3,'Empty chat',1767225679.75,1767225679.75,NULL,'','{}',0,NULL,NULL,'app');
INSERT INTO "conversations" VALUES(4,'Old crème brûlée notes',1767225700.0,1767225710.0,NULL,'','{}',0,8,1767225720.0,'app');
INSERT INTO "conversations" VALUES(5,'Server: haiku about rain',1767225800.0,1767225810.0,'tiny.gguf','','{}',0,10,NULL,'server');
INSERT INTO "conversations" VALUES(6,'What is in this picture?',1767225800.0,1767225810.0,'tiny-vision.gguf','','{}',0,12,NULL,'app');
CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        parent_id INTEGER NULL REFERENCES messages(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content TEXT NOT NULL,
        created_at REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'complete'
            CHECK (status IN ('complete', 'streaming', 'interrupted', 'cancelled', 'error')),
        finish_reason TEXT NULL,
        receipt_json TEXT NULL
    );
INSERT INTO "messages" VALUES(1,1,NULL,'user','How long do I bake a ginger cake?',1767225607.25,'complete',NULL,NULL);
INSERT INTO "messages" VALUES(2,1,1,'assistant','About 45 minutes at 170 °C.',1767225614.5,'complete','stop','{"app_version": "0.1.0", "architecture": "qwen2", "cached_tokens": 0, "finish_reason": "stop", "generated_tokens": 12, "llama_cpp_version": "0.3.16", "model_file": "qwen2.5-0.5b-instruct-q4_k_m.gguf", "prompt_tokens": 31, "quantization": "Q4_K_M", "sampling": {"frequency_penalty": 0.0, "max_tokens": 1024, "min_p": 0.05, "mirostat_eta": 0.1, "mirostat_mode": 0, "mirostat_tau": 5.0, "presence_penalty": 0.0, "repeat_last_n": 64, "repeat_penalty": 1.1, "seed": 42, "temperature": 0.2, "top_k": 40, "top_p": 0.9, "typical_p": 1.0}, "seed": 42, "sha256": "abababababababababababababababababababababababababababababababab", "template": "chatml", "tokens_per_s": 95.5, "total_s": 0.21, "ttft_s": 0.08}');
INSERT INTO "messages" VALUES(3,1,1,'assistant','Until a skewer comes out clean — 40 to 50 min',1767225629.0,'cancelled',NULL,NULL);
INSERT INTO "messages" VALUES(4,1,2,'user','And the icing? 🍋',1767225643.5,'complete',NULL,NULL);
INSERT INTO "messages" VALUES(5,2,NULL,'system','Reply in French.',1767225658.0,'complete',NULL,NULL);
INSERT INTO "messages" VALUES(6,2,5,'user','Bonjour',1767225665.25,'complete',NULL,NULL);
INSERT INTO "messages" VALUES(7,2,6,'assistant','Bonjour ! Comment',1767225672.5,'interrupted',NULL,NULL);
INSERT INTO "messages" VALUES(8,4,NULL,'user','Caramelise the sugar with a torch.',1767225710.0,'complete',NULL,NULL);
INSERT INTO "messages" VALUES(9,5,NULL,'user','Write a haiku about rain.',1767225805.0,'complete',NULL,NULL);
INSERT INTO "messages" VALUES(10,5,9,'assistant','Soft rain on the roof',1767225805.0,'complete',NULL,NULL);
INSERT INTO "messages" VALUES(11,6,NULL,'user','What is in these pictures?',1767225805.0,'complete',NULL,NULL);
INSERT INTO "messages" VALUES(12,6,11,'assistant','A cat and a dog.',1767225805.0,'complete',NULL,NULL);
CREATE TABLE message_images (
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
        mime TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        PRIMARY KEY (message_id, position)
    );
INSERT INTO "message_images" VALUES(11,0,'77af778b51abd4a3c51c5ddd97204a9c3ae614ebccb75a606c3b6865aed6744e','image/png',64,48);
INSERT INTO "message_images" VALUES(11,1,'cd6357efdd966de8c0cb2f876cc89ec74ce35f0968e11743987084bd42fb8944','image/png',64,48);
CREATE VIRTUAL TABLE messages_fts USING fts5(
        content, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
    );
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
CREATE VIRTUAL TABLE conversations_fts USING fts5(
        title, content='conversations', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
    );
INSERT INTO conversations_fts (conversations_fts) VALUES ('rebuild');
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
CREATE INDEX messages_by_parent ON messages (parent_id);
CREATE INDEX conversations_live_order ON conversations (pinned DESC, updated_at DESC, id DESC)
    WHERE deleted_at IS NULL
    ;
CREATE INDEX conversations_trash ON conversations (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX messages_streaming ON messages (id) WHERE status = 'streaming';
CREATE INDEX message_images_by_hash ON message_images (sha256);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
    END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
        INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
    END;
CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN
        INSERT INTO conversations_fts (rowid, title) VALUES (new.id, new.title);
    END;
CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN
        INSERT INTO conversations_fts (conversations_fts, rowid, title) VALUES ('delete', old.id, old.title);
    END;
CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title ON conversations BEGIN
        INSERT INTO conversations_fts (conversations_fts, rowid, title) VALUES ('delete', old.id, old.title);
        INSERT INTO conversations_fts (rowid, title) VALUES (new.id, new.title);
    END;
COMMIT;
