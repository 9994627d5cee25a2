<?php
// PERSCOM (Laravel, spatie/webhook-server): the body is json_encode of the payload,
// the Signature header hash_hmac('sha256', body, secret).
// usage: php perscom.php BODY_OUT_FILE SECRET
$payload = [
    'event' => 'rankrecord.updated',
    'created' => '2024-05-14T16:03:21.000000Z',
    'request_id' => '9c1f2b7e-3a55-4a6e-9d8e-2f7c0e5b1a90',
    'trace_id' => '01HXZ3K6J9V2T8W4Q5R7N1M0PC',
    'data' => [
        'id' => 512,
        'text' => "Promoted \u{2014} see https://perscom.example/orders/512",
        'rank' => ['id' => 9, 'name' => 'Sergeant'],
        'user' => ['id' => 77, 'name' => "Jos\u{e9} \u{1F396}"],
    ],
    'changes' => ['rank_id' => 9],
];
$body = json_encode($payload);
file_put_contents($argv[1], $body);
echo 'Signature: ' . hash_hmac('sha256', $body, $argv[2]) . "\n";
