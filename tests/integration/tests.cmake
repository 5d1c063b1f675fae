# Integration tests: Python 3 (standard library) dialogues against the real portcullis binary, with a
# private Postfix (SASL through a private Dovecot), smtp-sink and a deliberately hostile upstream
# (tests/integration/hostile_upstream.py).
# Included from tests/CMakeLists.txt. Each module is one CTest test, run serially (they start servers).
if(TARGET portcullis)
  set(PC_INTEGRATION_MODULES
    test_fixtures
    test_cli
    test_docs_config
    test_smtp_basic
    test_smtp_tls
    test_smtp_attacks
    test_smtp_limits
    test_smtp_upstream_faults
    test_smtp_identity
    test_smtp_auth
    test_smtp_lifecycle
    test_smtp_filters
    test_policies
    test_smtp_resources
    test_imap
    test_pop3
    test_mailbox_attacks
    test_mailbox_identity
    test_quickstart
    test_plugin_api
    test_dnsbl
    test_clamav
    test_rules
    test_dkim
    test_spf
    test_dmarc
    test_arc
    test_state
    test_state_filters
    test_quarantine
    test_docker_files
  )
  foreach(module IN LISTS PC_INTEGRATION_MODULES)
    add_test(NAME integration.${module}
             COMMAND ${Python3_EXECUTABLE} -m unittest -v ${module}
             WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/integration)
    set_tests_properties(integration.${module} PROPERTIES
      ENVIRONMENT "PORTCULLIS_BIN=$<TARGET_FILE:portcullis>;PORTCULLISCTL_BIN=$<TARGET_FILE:portcullisctl>;PORTCULLIS_TEST_PLUGIN=$<TARGET_FILE:pc_testmark>;PORTCULLIS_TEST_EXAMPLE=$<TARGET_FILE:pc_example>;PORTCULLIS_STORE_CHECK=$<TARGET_FILE:store_check>"
      LABELS integration
      TIMEOUT 600
      RUN_SERIAL TRUE)
  endforeach()
endif()
