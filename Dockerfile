# medallion's container image: the release binary, the pipeline configs and the gold models.
# Build: docker build -t medallion .   Run: docker run --rm medallion --help
FROM rust:1.94-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
COPY tests ./tests
RUN cargo build --release --bin medallion

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app medallion
WORKDIR /app
COPY --from=build /src/target/release/medallion /usr/local/bin/medallion
COPY jobs ./jobs
COPY sql ./sql
USER medallion
ENTRYPOINT ["medallion"]
CMD ["--help"]
