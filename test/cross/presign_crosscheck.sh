#!/usr/bin/env bash
# Compares the presigned URLs that `ota-server presign` prints (the S3 backend,
# configured through OTA_S3_*) with botocore's (presign_botocore.py) for awkward keys x {GET, PUT}
# x {path-style over http with a port, virtual-hosted over https, virtual-hosted
# over http with a port} x {with, without a session token}. Any difference
# fails, printing both URLs.
#
# usage: presign_crosscheck.sh PATH/TO/ota-server
# Fails when no python3 can import boto3: scripts/deps installs python3-boto3.
set -u

server=${1:?usage: presign_crosscheck.sh PATH/TO/ota-server}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
peer="$here/presign_botocore.py"

# Debian's python3-boto3 is what scripts/deps installs; any python3 with boto3 will do.
python=""
for candidate in ${PYTHON:-} /usr/bin/python3 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import boto3' >/dev/null 2>&1; then
        python=$candidate
        break
    fi
done
if [ -z "$python" ]; then
    echo "FAIL: no python3 with boto3; run scripts/deps (it installs python3-boto3)"
    exit 1
fi
echo "botocore $("$python" -c 'import botocore; print(botocore.__version__)') via $python"

keys=(
    "plain.bin"
    "folder/a b+c=d&e~(f).bin"
    "a/b/c.bin"
    "ü/日本.bin"
    "two  spaces and trailing .bin"
    "plus+equals=amp&tilde~percent%.bin"
    "(parens)[brackets]{braces}!*'@\$,;:.bin"
    "question?hash#.bin"
    "double//slash/./dot/../x.bin"
    "v1.2.3/fw-ÄÖÜ_é~.img"
)
endpoints=(
    "path http://127.0.0.1:4569 eu-west-1"
    "virtual https://s3.eu-central-1.amazonaws.com eu-central-1"
    "virtual http://minio.example:9000 us-east-1"
)
tokens=("" "IQoJb3JpZ2luX2VjE/+token==")

time_arg=20240229T235958Z
common=(--bucket ota-artifacts --access-key AKIAOTATESTKEY --secret-key "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    --time "$time_arg")

# What `ota-server presign` prints for the same inputs, given as the server's OTA_S3_* configuration.
ours_presign() {
    local key="" method="" style="" endpoint="" region="" expires="" token="" bucket="" access="" secret="" at=""
    while [ $# -gt 0 ]; do
        case $1 in
        --key) key=$2 ;; --method) method=$2 ;; --style) style=$2 ;; --endpoint) endpoint=$2 ;;
        --region) region=$2 ;; --expires) expires=$2 ;; --session-token) token=$2 ;; --bucket) bucket=$2 ;;
        --access-key) access=$2 ;; --secret-key) secret=$2 ;; --time) at=$2 ;;
        esac
        shift 2
    done
    env -i PATH="$PATH" OTA_STORAGE=s3 OTA_S3_ENDPOINT="$endpoint" OTA_S3_REGION="$region" OTA_S3_BUCKET="$bucket" \
        OTA_S3_ACCESS_KEY="$access" OTA_S3_SECRET_KEY="$secret" OTA_S3_SESSION_TOKEN="$token" \
        OTA_S3_PATH_STYLE="$([ "$style" = path ] && echo 1 || echo 0)" \
        "$server" presign --method "$method" --key "$key" --time "$at" --expires "$expires"
}

# Every case's arguments, one a line, separated by U+001F (no key holds it), for botocore's batch mode: one
# python process for all of them, as importing boto3 costs most of a second.
cases=()
expires=900
for key in "${keys[@]}"; do
    for method in GET PUT; do
        for ep in "${endpoints[@]}"; do
            read -r style endpoint region <<<"$ep"
            for token in "${tokens[@]}"; do
                args=("${common[@]}" --key "$key" --method "$method" --style "$style" --endpoint "$endpoint"
                    --region "$region" --expires "$expires")
                [ -n "$token" ] && args+=(--session-token "$token")
                expires=$((expires == 900 ? 604800 : 900))
                cases+=("$(IFS=$'\x1f' && echo "${args[*]}")")
            done
        done
    done
done

mapfile -t theirs_all < <(printf '%s\n' "${cases[@]}" | "$python" "$peer" --batch 2>&1)
if [ "${#theirs_all[@]}" -ne "${#cases[@]}" ]; then
    echo "FAIL: botocore answered ${#theirs_all[@]} lines for ${#cases[@]} cases: ${theirs_all[*]}"
    exit 1
fi

passed=0
failed=0
for i in "${!cases[@]}"; do
    IFS=$'\x1f' read -r -a args <<<"${cases[$i]}"
    ours=$(ours_presign "${args[@]}" 2>&1)
    ours_rc=$?
    theirs=${theirs_all[$i]}
    if [ "$ours_rc" -eq 0 ] && [ "${theirs#ERROR: }" == "$theirs" ] && [ "$ours" == "$theirs" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "DIFFERENT: ${cases[$i]//$'\x1f'/ }"
        echo "  ota      ($ours_rc): $ours"
        echo "  botocore: $theirs"
    fi
done

echo "presign_crosscheck: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
