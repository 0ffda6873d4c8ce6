// Kafka's own Java client (org.apache.kafka:kafka-clients) against a broker: produces COUNT
// records to TOPIC with acks=all, then consumes them back in consumer group GROUP and commits.
// Connection and security settings come from a properties file, as with Kafka's tools.
//
//   java -cp 'libs/*:CLASSES' PalisadeClient CLIENT.properties TOPIC GROUP COUNT
//
// Prints `produced N` and `consumed N` on success (exit 0). A failure prints one line naming the
// step and the exception class (`produce failed: org.apache...TopicAuthorizationException: ...`)
// and exits 3 (produce) or 4 (consume), so tests can assert on what the client saw.

import java.io.FileInputStream;
import java.io.InputStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class PalisadeClient {
    private static final Duration CONSUME_LIMIT = Duration.ofSeconds(90);

    public static void main(String[] args) throws Exception {
        if (args.length != 4) {
            System.err.println("usage: PalisadeClient CLIENT.properties TOPIC GROUP COUNT");
            System.exit(2);
        }
        Properties common = new Properties();
        try (InputStream in = new FileInputStream(args[0])) {
            common.load(in);
        }
        String topic = args[1];
        String group = args[2];
        int count = Integer.parseInt(args[3]);

        try {
            produce(common, topic, count);
        } catch (Exception e) {
            fail("produce", e, 3);
        }
        System.out.println("produced " + count);
        try {
            int consumed = consume(common, topic, group, count);
            System.out.println("consumed " + consumed);
            if (consumed != count) {
                System.exit(5);
            }
        } catch (Exception e) {
            fail("consume", e, 4);
        }
    }

    private static void produce(Properties common, String topic, int count) throws Exception {
        Properties props = new Properties();
        props.putAll(common);
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                sent.add(producer.send(new ProducerRecord<>(topic, "k" + i, "v" + i)));
            }
            for (Future<RecordMetadata> f : sent) {
                f.get();
            }
        }
    }

    private static int consume(Properties common, String topic, String group, int count) {
        Properties props = new Properties();
        props.putAll(common);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        Set<String> seen = new HashSet<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.nanoTime() + CONSUME_LIMIT.toNanos();
            while (seen.size() < count && System.nanoTime() < deadline) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : records) {
                    if (!r.value().equals("v" + r.key().substring(1))) {
                        throw new IllegalStateException("key " + r.key() + " came with " + r.value());
                    }
                    seen.add(r.value());
                }
            }
            consumer.commitSync();
        }
        return seen.size();
    }

    private static void fail(String step, Exception e, int code) {
        Throwable cause = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
        System.out.println(step + " failed: " + cause.getClass().getName() + ": " + cause.getMessage());
        for (Throwable c = cause.getCause(); c != null; c = c.getCause()) {
            System.out.println("  caused by " + c.getClass().getName() + ": " + c.getMessage());
        }
        System.exit(code);
    }
}
