# Workloads for `diskforge register` (sourced by bench/compare.sh).
#
# Upload of a 1 GiB image to a local Glance 33 (scripts/glance-for-bench.sh):
# diskforge (create record, stream with md5+sha512, read back and verify)
# against curl doing the create and `curl -T` of the same file. Target:
# diskforge at >= 90% of curl's throughput. Every diskforge run is wrapped
# in /usr/bin/time to report its peak RSS (target < 64 MiB) after the pair.
register_label="register upload 1 GiB to local Glance (vs curl -T)"
register_label2="register upload 1 GiB to local Glance (vs curl -T + md5sum + sha512sum)"
if [ -z "${filter:-}" ] || grep -qE "$filter" <<<"$register_label$register_label2"; then
    register_img=${TMPDIR:-/tmp}/diskforge-bench-1g.raw
    if [ "$(stat -c %s "$register_img" 2>/dev/null || echo 0)" != 1073741824 ]; then
        head -c 1G /dev/urandom >"$register_img"
    fi
    read -r GLANCE_URL register_pid register_state < <("$top/scripts/glance-for-bench.sh" start $$)
    export GLANCE_URL REGISTER_IMG=$register_img REGISTER_RSS_LOG=$scratch/register-rss.log
    export GLANCE_TOOL="$top/scripts/glance-for-bench.sh"
    : >"$REGISTER_RSS_LOG"
    pair "$register_label" \
        '/usr/bin/time -f %M -a -o "$REGISTER_RSS_LOG" $DF register -q --os-image-url "$GLANCE_URL" --upload --disk-format raw --name bench "$REGISTER_IMG"' \
        'id=$(curl -sf -H "Content-Type: application/json" -d "{\"name\":\"bench\",\"disk_format\":\"raw\",\"container_format\":\"bare\"}" "$GLANCE_URL/v2/images" | sed "s/.*\"id\": \"\([^\"]*\)\".*/\1/") && curl -sf -X PUT -H "Content-Type: application/octet-stream" -T "$REGISTER_IMG" "$GLANCE_URL/v2/images/$id/file"' \
        '"$GLANCE_TOOL" purge "$GLANCE_URL"; sync'
    # The same, with the reference also computing the two checksums that
    # diskforge computes and verifies (on a loaded 2-core machine the
    # hashing competes with Glance for CPU).
    pair "$register_label2" \
        '/usr/bin/time -f %M -a -o "$REGISTER_RSS_LOG" $DF register -q --os-image-url "$GLANCE_URL" --upload --disk-format raw --name bench "$REGISTER_IMG"' \
        'md5sum "$REGISTER_IMG" >md5 & sha512sum "$REGISTER_IMG" >sha512 & id=$(curl -sf -H "Content-Type: application/json" -d "{\"name\":\"bench\",\"disk_format\":\"raw\",\"container_format\":\"bare\"}" "$GLANCE_URL/v2/images" | sed "s/.*\"id\": \"\([^\"]*\)\".*/\1/") && curl -sf -X PUT -H "Content-Type: application/octet-stream" -T "$REGISTER_IMG" "$GLANCE_URL/v2/images/$id/file" && wait' \
        '"$GLANCE_TOOL" purge "$GLANCE_URL"; sync'
    note "register: diskforge peak RSS over $(wc -l <"$REGISTER_RSS_LOG") uploads of 1 GiB: max $(sort -n "$REGISTER_RSS_LOG" | tail -1) KiB"
    "$top/scripts/glance-for-bench.sh" stop "$register_pid" "$register_state"
fi
