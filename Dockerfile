# pg_durable on PostgreSQL 17 with plv8 built from its release sources.
#   docker build -t pg-durable .          (the plv8/V8 build takes a while the first time)
#   docker compose up -d --wait           (see README: quick start)
ARG PG_MAJOR=17
ARG PLV8_VERSION=3.2.3
ARG NODE_MAJOR=20

# ---- plv8, built from its release tarball (it downloads and builds V8 itself) ----------------
FROM postgres:${PG_MAJOR}-bookworm AS plv8
ARG PG_MAJOR
ARG PLV8_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential ca-certificates cmake curl git pkg-config python3 \
      libtinfo5 libstdc++-12-dev libglib2.0-dev postgresql-server-dev-${PG_MAJOR} \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
RUN curl -fsSL "https://github.com/plv8/plv8/archive/refs/tags/v${PLV8_VERSION}.tar.gz" | tar xz \
 && cd "plv8-${PLV8_VERSION}" \
 && make -j"$(nproc)" \
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
