# pg_durable on PostgreSQL 17 with plv8 built from its release tag's sources.
#   docker build -t pg-durable .          (the plv8/V8 build takes a while the first time)
#   docker compose up -d --wait           (see README: quick start)
ARG PG_MAJOR=17
ARG PLV8_VERSION=3.2.3
ARG NODE_MAJOR=20

# ---- plv8, built from a git clone of its release tag (the way plv8's own images are built) -----
# plv8's Makefile fetches V8 (the deps/v8-cmake submodule) with `git submodule update`, which works
# only inside a git clone: a release tarball's deps/v8-cmake is empty, so building one fails.
# Version: 3.2.3 is the first plv8 release that compiles against PostgreSQL 17 (3.2.2 and older use
# tuplestore_donestoring, which PostgreSQL 17 removed).
# Packages: those in plv8's docs/BUILDING.md and its bookworm Dockerfile, plus python3 (V8's CMake
# build requires a Python 3 interpreter; plv8's image gets it as a recommended package of clang,
# which --no-install-recommends skips) and ca-certificates (for the HTTPS clones).
# Not chosen: the prebuilt postgresql-<major>-plv8 Debian packages from Pigsty's repository would
# skip the long V8 build, but the image would then trust a third-party apt repository and its key
# for the engine every workflow runs in, with a plv8 version set by that repository, not by us.
FROM postgres:${PG_MAJOR}-bookworm AS plv8
ARG PG_MAJOR
ARG PLV8_VERSION
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      binutils build-essential ca-certificates clang cmake git libstdc++-12-dev libtinfo5 \
      pkg-config python3 postgresql-server-dev-${PG_MAJOR} \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
# `make` clones V8 (git submodule update) and builds it with one job per CPU (the Makefile passes
# -j <cpus> to V8's build itself), then plv8; `make install` with DESTDIR stages the files in /out.
RUN git clone --depth 1 --branch "v${PLV8_VERSION}" https://github.com/plv8/plv8.git plv8 \
 && cd plv8 \
 && make \
 && make install DESTDIR=/out \
 && find /out -name '*.so' -exec strip --strip-unneeded {} +

# ---- pg_durable: bundle, extension scripts, worker ------------------------------------------
FROM node:${NODE_MAJOR}-bookworm-slim AS app
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY build ./build
COPY src ./src
COPY extension ./extension
RUN npm run build \
 && npm run build -- --check \
 && npm prune --omit=dev \
 && mkdir -p /opt/pg_durable \
 && cp -r dist extension node_modules package.json /opt/pg_durable/

# ---- the image: PostgreSQL + plv8 + pg_durable + the worker under a small supervisor --------
FROM postgres:${PG_MAJOR}-bookworm
ARG PG_MAJOR
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
COPY --from=plv8 /out/ /
COPY --from=app /usr/local/bin/node /usr/local/bin/node
COPY --from=app /opt/pg_durable /opt/pg_durable
RUN install -m 644 /opt/pg_durable/extension/pg_durable* /usr/share/postgresql/${PG_MAJOR}/extension/ \
 && ln -s /opt/pg_durable/dist/cli.js /usr/local/bin/pg-durable && chmod +x /opt/pg_durable/dist/cli.js
COPY docker/initdb/ /docker-entrypoint-initdb.d/
COPY docker/supervise.sh /usr/local/bin/pg-durable-supervise
ENV PG_DURABLE_LOG_LEVEL=info
HEALTHCHECK --interval=2s --timeout=3s --retries=60 CMD ["pg-durable-supervise", "healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "pg-durable-supervise"]
CMD ["postgres"]
