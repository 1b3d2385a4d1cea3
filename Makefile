# pg_durable: `make` builds (TypeScript -> plv8 bundle -> extension/*.sql), `make install` copies
# the control and SQL files where PostgreSQL looks for extensions (PGXS layout, DESTDIR honoured),
# `make installcheck` runs the pg_regress suite against a running server with plv8 and a worker.
PG_CONFIG ?= pg_config
EXTENSION = pg_durable
SHAREDIR := $(shell $(PG_CONFIG) --sharedir)
DATA = extension/$(EXTENSION).control $(wildcard extension/$(EXTENSION)--*.sql)

.PHONY: all build install uninstall test check installcheck

# installcheck: pg_regress (from PGXS, package postgresql-server-dev-<major>) runs test/regress
# against an existing database that has plv8 available and a running worker:
#   pg-durable worker --database-url postgresql://postgres@/contrib_regression?host=/var/run/postgresql &
#   make installcheck PGDATABASE=contrib_regression
REGRESS = $(basename $(notdir $(wildcard test/regress/sql/*.sql)))
PGDATABASE ?= contrib_regression
PG_REGRESS := $(dir $(shell $(PG_CONFIG) --pgxs))../../src/test/regress/pg_regress

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

installcheck:
	@test -x '$(PG_REGRESS)' || { echo "pg_regress not found at $(PG_REGRESS): install postgresql-server-dev-<major>"; exit 1; }
	mkdir -p test/regress/results
	'$(PG_REGRESS)' --inputdir=test/regress --outputdir=test/regress/results --use-existing --dbname='$(PGDATABASE)' $(REGRESS)
