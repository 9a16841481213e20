#include "api/api.h"

#include "http/respond.h"

/* GET /v1/signing-key: the public half of the key that signs manifests, for devices to verify them with. */
void ota__api_signing_key(ota_call_t *call)
{
    ota__respond_json(call, 200,
                      json_pack("{s:s, s:s}", "alg", "Ed25519", "public_key", call->worker->signing_key->public_base64));
}
