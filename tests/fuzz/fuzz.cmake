# libFuzzer targets for the pure parsers (configure with CC=clang -DPC_FUZZ=ON).
# The parser sources are compiled into each target (pc_parse itself is not built with
# -fsanitize=fuzzer-no-link). New inputs go to a scratch directory in the build tree, which is
# passed first; the checked-in seed corpus is passed second and never written to.
set(PC_FUZZ_PARSE_SRCS
  ${CMAKE_SOURCE_DIR}/gateway/parse/line.c
  ${CMAKE_SOURCE_DIR}/gateway/parse/stuff.c
  ${CMAKE_SOURCE_DIR}/gateway/smtp/smtp_parse.c
  ${CMAKE_SOURCE_DIR}/gateway/smtp/smtp_reply.c
  ${CMAKE_SOURCE_DIR}/gateway/smtp/smtp_data.c
  ${CMAKE_SOURCE_DIR}/gateway/parse/proxy.c
  ${CMAKE_SOURCE_DIR}/gateway/parse/sanitize.c
)
set(PC_FUZZ_FLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)

foreach(name smtp_parse smtp_data smtp_reply proxy)
  add_executable(fuzz_${name} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_${name}.c ${PC_FUZZ_PARSE_SRCS})
  target_compile_options(fuzz_${name} PRIVATE ${PC_FUZZ_FLAGS})
  target_link_options(fuzz_${name} PRIVATE ${PC_FUZZ_FLAGS})
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz-work/${name})
  add_test(NAME fuzz.${name}
    COMMAND fuzz_${name} -max_total_time=20 -rss_limit_mb=1024
            ${CMAKE_CURRENT_BINARY_DIR}/fuzz-work/${name}
            ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${name})
  set_tests_properties(fuzz.${name} PROPERTIES LABELS fuzz TIMEOUT 180)
endforeach()
target_sources(fuzz_smtp_data PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_sink.c)

# The configuration loader: YAML from an untrusted file must never crash the loader.
add_executable(fuzz_config ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_config.c
  ${CMAKE_SOURCE_DIR}/gateway/config/config.c ${CMAKE_SOURCE_DIR}/gateway/config/tree.c
  ${CMAKE_SOURCE_DIR}/gateway/config/values.c ${CMAKE_SOURCE_DIR}/gateway/config/cli.c
  ${CMAKE_SOURCE_DIR}/gateway/config/options.c)
target_compile_options(fuzz_config PRIVATE ${PC_FUZZ_FLAGS})
target_link_options(fuzz_config PRIVATE ${PC_FUZZ_FLAGS})
target_link_libraries(fuzz_config PRIVATE PkgConfig::YAML)
file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz-work/config)
add_test(NAME fuzz.config
  COMMAND fuzz_config -max_total_time=20 -rss_limit_mb=1024
          ${CMAKE_CURRENT_BINARY_DIR}/fuzz-work/config
          ${CMAKE_SOURCE_DIR}/tests/fixtures/config)
set_tests_properties(fuzz.config PROPERTIES LABELS fuzz TIMEOUT 180)

# POP3 command lines and the upstream response stream (status lines, multi-line bodies).
add_executable(fuzz_pop3_parse ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_pop3_parse.c
  ${CMAKE_SOURCE_DIR}/gateway/pop3/pop3_parse.c ${CMAKE_SOURCE_DIR}/gateway/parse/line.c
  ${CMAKE_SOURCE_DIR}/gateway/parse/stuff.c ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_sink.c)
target_compile_options(fuzz_pop3_parse PRIVATE ${PC_FUZZ_FLAGS})
target_link_options(fuzz_pop3_parse PRIVATE ${PC_FUZZ_FLAGS})
file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz-work/pop3_parse)
add_test(NAME fuzz.pop3_parse
  COMMAND fuzz_pop3_parse -max_total_time=20 -rss_limit_mb=1024
          ${CMAKE_CURRENT_BINARY_DIR}/fuzz-work/pop3_parse
          ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/pop3_parse)
set_tests_properties(fuzz.pop3_parse PROPERTIES LABELS fuzz TIMEOUT 180)

# The IMAP tokenizer in both directions (literals, quoting, limits) and its line-head helpers.
add_executable(fuzz_imap_token ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_imap_token.c
  ${CMAKE_SOURCE_DIR}/gateway/imap/imap_token.c)
target_compile_options(fuzz_imap_token PRIVATE ${PC_FUZZ_FLAGS})
target_link_options(fuzz_imap_token PRIVATE ${PC_FUZZ_FLAGS})
file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz-work/imap_token)
add_test(NAME fuzz.imap_token
  COMMAND fuzz_imap_token -max_total_time=20 -rss_limit_mb=1024
          ${CMAKE_CURRENT_BINARY_DIR}/fuzz-work/imap_token
          ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/imap_token)
set_tests_properties(fuzz.imap_token PROPERTIES LABELS fuzz TIMEOUT 180)

# The DNS answer parser: responses from the network (names, compression, every RDATA length).
add_executable(fuzz_dns_answer ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_dns_answer.c
  ${CMAKE_SOURCE_DIR}/gateway/parse/dns_parse.c)
target_compile_options(fuzz_dns_answer PRIVATE ${PC_FUZZ_FLAGS})
target_link_options(fuzz_dns_answer PRIVATE ${PC_FUZZ_FLAGS})
file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz-work/dns_answer)
add_test(NAME fuzz.dns_answer
  COMMAND fuzz_dns_answer -max_total_time=20 -rss_limit_mb=1024
          ${CMAKE_CURRENT_BINARY_DIR}/fuzz-work/dns_answer
          ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/dns_answer)
set_tests_properties(fuzz.dns_answer PROPERTIES LABELS fuzz TIMEOUT 180)

# One libFuzzer target: fuzz/fuzz_NAME.c with the sources it reads, run for SECONDS in CI.
function(pc_fuzz_target name seconds)
  add_executable(fuzz_${name} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_${name}.c ${ARGN})
  target_compile_options(fuzz_${name} PRIVATE ${PC_FUZZ_FLAGS})
  target_link_options(fuzz_${name} PRIVATE ${PC_FUZZ_FLAGS})
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/fuzz-work/${name})
  add_test(NAME fuzz.${name}
    COMMAND fuzz_${name} -max_total_time=${seconds} -rss_limit_mb=1024
            ${CMAKE_CURRENT_BINARY_DIR}/fuzz-work/${name}
            ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${name})
  set_tests_properties(fuzz.${name} PROPERTIES LABELS fuzz TIMEOUT 120)
endfunction()

# Authentication-Results values from incoming messages (the authserv-id the gateway removes by).
pc_fuzz_target(authres 10 ${CMAKE_SOURCE_DIR}/gateway/parse/authres.c)
# Host names of URLs in message text (the dnsbl filter's URI lists).
pc_fuzz_target(urls 10 ${CMAKE_SOURCE_DIR}/gateway/parse/urls.c)
# DKIM tag-lists of incoming DKIM-Signature fields (the dkim filter's key names).
pc_fuzz_target(dkim_tags 10 ${CMAKE_SOURCE_DIR}/filters/dkim/tags.c)
target_include_directories(fuzz_dkim_tags PRIVATE ${CMAKE_SOURCE_DIR}/filters/dkim)
# ARC fields: instance, b= removed, relaxed form, vouch entries, header split, body canonicalisation.
pc_fuzz_target(arc_fields 10 ${CMAKE_SOURCE_DIR}/filters/arc/fields.c)
target_include_directories(fuzz_arc_fields PRIVATE ${CMAKE_SOURCE_DIR}/filters/arc)
# Names inside archive attachments (and attachment names): base, extension, the cleaned text.
pc_fuzz_target(archive_names 10 ${CMAKE_SOURCE_DIR}/filters/rules/archive_names.c)
target_include_directories(fuzz_archive_names PRIVATE ${CMAKE_SOURCE_DIR}/filters/rules)
target_link_libraries(fuzz_archive_names PRIVATE PkgConfig::ARCHIVE)
# Archive attachments' bytes through libarchive, under the reader's bounds (entries, bytes, time).
pc_fuzz_target(archive_bytes 10 ${CMAKE_SOURCE_DIR}/filters/rules/archive_names.c)
target_include_directories(fuzz_archive_bytes PRIVATE ${CMAKE_SOURCE_DIR}/filters/rules)
target_link_libraries(fuzz_archive_bytes PRIVATE PkgConfig::ARCHIVE)
# The quarantine's metadata files (gateway/quarantine/qmeta.c), read back by list, release and expiry.
pc_fuzz_target(qmeta 10 ${CMAKE_SOURCE_DIR}/gateway/quarantine/qmeta.c
  ${CMAKE_SOURCE_DIR}/gateway/parse/sanitize.c)
# The admin socket's request lines (gateway/admin/admin_cmd.c): whoever may connect sends them.
pc_fuzz_target(admin_cmd 10 ${CMAKE_SOURCE_DIR}/gateway/admin/admin_cmd.c
  ${CMAKE_SOURCE_DIR}/gateway/quarantine/qmeta.c ${CMAKE_SOURCE_DIR}/gateway/parse/sanitize.c)
# portcullisctl's reader of the admin socket's replies (tools/ctl_reply.c).
pc_fuzz_target(ctl_reply 10 ${CMAKE_SOURCE_DIR}/tools/ctl_reply.c)
target_include_directories(fuzz_ctl_reply PRIVATE ${CMAKE_SOURCE_DIR}/tools)
# Policy files (policies/): loading, the equal-priority check, matching and explain.
pc_fuzz_target(policy 20 ${CMAKE_SOURCE_DIR}/policies/policy.c
  ${CMAKE_SOURCE_DIR}/gateway/config/config.c ${CMAKE_SOURCE_DIR}/gateway/config/tree.c
  ${CMAKE_SOURCE_DIR}/gateway/config/values.c ${CMAKE_SOURCE_DIR}/gateway/config/cli.c
  ${CMAKE_SOURCE_DIR}/gateway/config/options.c)
target_link_libraries(fuzz_policy PRIVATE PkgConfig::YAML m)
target_include_directories(fuzz_policy PRIVATE ${CMAKE_SOURCE_DIR})
