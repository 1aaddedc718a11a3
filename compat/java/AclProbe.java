import java.nio.charset.StandardCharsets;
import java.util.*;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.acl.*;
import org.apache.kafka.common.resource.*;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * ACL probe. Usage:
 *   AclProbe BOOTSTRAP admin ALLOWED_TOPIC FORBIDDEN_TOPIC PRINCIPAL [client props...]
 *     creates both topics, lets PRINCIPAL write ALLOWED_TOPIC (literal ACL) and describe
 *     topics starting with it (prefixed ACL), then prints every ACL DescribeAcls returns.
 *   AclProbe BOOTSTRAP produce TOPIC VALUE [client props...]
 *     sends one record; prints ACK with partition and offset, or REFUSED with the
 *     exception class of the failure.
 * Prints tab-separated lines, then DONE.
 */
public class AclProbe {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], mode = args[1];
        Properties props = new Properties();
        int first = mode.equals("admin") ? 5 : 4;
        for (int i = first; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            props.put(kv[0], kv[1]);
        }
        if (mode.equals("admin")) admin(bootstrap, args[2], args[3], args[4], props);
        else produce(bootstrap, args[2], args[3], props);
        System.out.println("DONE");
    }

    static void admin(String bootstrap, String allowed, String forbidden, String principal, Properties props) throws Exception {
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        try (Admin admin = Admin.create(props)) {
            admin.createTopics(List.of(new NewTopic(allowed, 1, (short) 1), new NewTopic(forbidden, 1, (short) 1)))
                 .all().get(30, TimeUnit.SECONDS);
            AccessControlEntry write = new AccessControlEntry(principal, "*", AclOperation.WRITE, AclPermissionType.ALLOW);
            AccessControlEntry describe = new AccessControlEntry(principal, "*", AclOperation.DESCRIBE, AclPermissionType.ALLOW);
            admin.createAcls(List.of(
                new AclBinding(new ResourcePattern(ResourceType.TOPIC, allowed, PatternType.LITERAL), write),
                new AclBinding(new ResourcePattern(ResourceType.TOPIC, allowed, PatternType.PREFIXED), describe)))
                 .all().get(30, TimeUnit.SECONDS);
            System.out.println("CREATED");
            List<String> acls = new ArrayList<>();
            for (AclBinding b : admin.describeAcls(AclBindingFilter.ANY).values().get(30, TimeUnit.SECONDS)) {
                acls.add("ACL\t" + b.pattern().resourceType() + "\t" + b.pattern().name() + "\t" + b.pattern().patternType()
                    + "\t" + b.entry().principal() + "\t" + b.entry().host() + "\t" + b.entry().operation()
                    + "\t" + b.entry().permissionType());
            }
            Collections.sort(acls);
            acls.forEach(System.out::println);
        }
    }

    static void produce(String bootstrap, String topic, String value, Properties props) throws Exception {
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 15000);
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 20000);
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10000);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            try {
                RecordMetadata md = producer.send(new ProducerRecord<>(topic, 0, null, value.getBytes(StandardCharsets.UTF_8)))
                                            .get(30, TimeUnit.SECONDS);
                System.out.println("ACK\t" + md.partition() + "\t" + md.offset());
            } catch (ExecutionException e) {
                System.out.println("REFUSED\t" + e.getCause().getClass().getSimpleName());
            }
        }
    }
}
