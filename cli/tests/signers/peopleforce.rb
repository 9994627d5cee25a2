# PeopleForce's documented Ruby verification, turned around to sign.
# usage: ruby peopleforce.rb BODY_FILE SECRET
require 'openssl'

payload_body = File.binread(ARGV[0])
secret_key = ARGV[1]
computed_signature = 'sha256=' + OpenSSL::HMAC.hexdigest(OpenSSL::Digest.new('sha256'), secret_key, payload_body)
puts "X-PeopleForce-Signature: #{computed_signature}"
