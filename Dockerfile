# dbx-node image: one static binary on an empty base. Nothing is pulled:
# `make docker` builds bin/docker/dbx-node on the host (CGO_ENABLED=0) and
# this file only copies it.
#
#   make docker                     # → dbx-node:dev
#   docker run --rm dbx-node:dev serve --help
#
# Defaults: listen on every interface of the container, data in /data (a
# volume), every flag also from the environment (DBX_ID, DBX_JOIN, ...).
# Set DBX_ADVERTISE_HOST (or pass --*-addr with the container's IP) so the
# node announces an address the others can reach.
FROM scratch
COPY bin/docker/dbx-node /dbx-node
COPY --chown=65532:65532 bin/docker/empty/ /data/
COPY --chown=65532:65532 bin/docker/empty/ /tmp/
ENV DBX_DATA_DIR=/data \
    DBX_RESP_ADDR=0.0.0.0:6379 \
    DBX_CLUSTER_RESP_ADDR=0.0.0.0:16379 \
    DBX_RPC_ADDR=0.0.0.0:7380 \
    DBX_GOSSIP_ADDR=0.0.0.0:7946 \
    DBX_HTTP_ADDR=0.0.0.0:8080
EXPOSE 6379 16379 7380 7946 7946/udp 8080
VOLUME /data
USER 65532:65532
# No shell in the image: the binary checks itself (GET /healthz on
# DBX_HTTP_ADDR, loopback for 0.0.0.0). /healthz is 200 once the node
# serves, 503 before and after it was drained.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/dbx-node", "healthcheck", "--timeout", "4s"]
ENTRYPOINT ["/dbx-node"]
CMD ["serve"]
