#ifndef OTA_SERVER_HTTP_DISPATCH_H
#define OTA_SERVER_HTTP_DISPATCH_H

#include <h2o.h>

/*
 * The one h2o handler of the server: routes a request (404, 405 + Allow),
 * checks its path parameters (400 for a bad UUID) and body (413, 415, 400),
 * authenticates it (401, 403) and hands it to the route's handler.
 */
int ota__dispatch(h2o_handler_t *self, h2o_req_t *req);

#endif
